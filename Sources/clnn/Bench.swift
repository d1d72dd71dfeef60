import ArgumentParser
@_spi(Reference) import Device
import Foundation
@_spi(CLI) import NN

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: medians of repeated runs.",
        subcommands: [Gemm.self, TrainBench.self, CNNBench.self, Ladder.self, Startup.self, Launch.self, Scale.self, Elementwise.self])
}

/// Seconds since `start` (a DispatchTime uptime in ns).
func secondsSince(_ start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

extension Bench {
    struct Startup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time from start-up to the first kernel result, and each kernel file's program build.",
            discussion: "POCL caches compiled kernels in ~/.cache/pocl; set POCL_CACHE_DIR to an empty folder "
                + "to time a cold start.")

        @Option(help: "opencl or opencl:N.")
        var device: String = "opencl"

        func run() throws {
            let start = DispatchTime.now().uptimeNanoseconds
            let tag = try DeviceTag(parsing: device)
            guard tag.isOpenCL else { throw ValidationError("bench startup needs an OpenCL device, got \(tag)") }
            let discovered = secondsSince(start)
            let opened = try OpenCLRuntime.shared.device(tag.index)
            let contextReady = secondsSince(start)
            let result = try Tensor([-1, 2], shape: [2], on: tag).activation(.relu).toArray()
            let firstKernel = secondsSince(start)
            precondition(result == [0, 2], "relu on \(tag) returned \(result)")
            print("device \(tag): \(opened.info.name)")
            print(String(format: "discovery %.3f s, context+queue %.3f s, "
                         + "first kernel result (relu build + run) %.3f s",
                         discovered, contextReady - discovered, firstKernel))
            var total = 0.0
            for (file, seconds) in try opened.buildAllPrograms() {
                print(String(format: "  build %-12@ %.3f s", file as NSString, seconds))
                total += seconds
            }
            print(String(format: "all programs built %.3f s (relu.cl was already built above)", total))
        }
    }
}

/// The median of `runs` timings of `body` (seconds), after one warm-up run.
func medianSeconds(runs: Int, _ body: () throws -> Void) rethrows -> Double {
    try body()
    var times: [Double] = []
    for _ in 0..<max(runs, 1) {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(secondsSince(start))
    }
    return times.sorted()[times.count / 2]
}

/// Devices named by a `--device` option: `all`, or one tag.
func benchDevices(_ text: String) throws -> [DeviceTag] {
    text == "all" ? DeviceTag.available : [try DeviceTag(parsing: text)]
}

extension Bench {
    struct Gemm: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "SGEMM GFLOP/s for the goal shapes, on every device and transpose variant.")

        @Option(help: "all, cpu, opencl or opencl:N.")
        var device: String = "all"

        @Option(help: "Timed runs per case (the median is printed).")
        var runs: Int = 5

        @Flag(help: "Also time the naive reference kernel.")
        var naive = false

        struct Case { let name: String; let m, n, k: Int; let transA, transB: Bool }
        static let cases = [
            Case(name: "1024^3", m: 1024, n: 1024, k: 1024, transA: false, transB: false),
            Case(name: "1024^3 tA", m: 1024, n: 1024, k: 1024, transA: true, transB: false),
            Case(name: "1024^3 tB", m: 1024, n: 1024, k: 1024, transA: false, transB: true),
            Case(name: "60000x50x784 (fwd x.w1)", m: 60000, n: 50, k: 784, transA: false, transB: false),
            Case(name: "784x50x60000 tA (dW)", m: 784, n: 50, k: 60000, transA: true, transB: false),
            Case(name: "60000x784x50 tB (dX)", m: 60000, n: 784, k: 50, transA: false, transB: true),
            Case(name: "64x50x784 (batch fwd)", m: 64, n: 50, k: 784, transA: false, transB: false),
        ]

        func validate() throws {
            guard runs > 0 else { throw ValidationError("--runs must be at least 1, got \(runs)") }
        }

        func run() throws {
            let devices = try benchDevices(device)
            print("case                          device      variant   median ms   GFLOP/s  of peak")
            for tag in devices {
                try tag.warmUp()
                // The device's FP32 peak where the driver's clock and units give it (GPUs of known vendors).
                let peak = tag.isOpenCL ? OpenCLRuntime.shared.devices[tag.index].peakGFLOPS : nil
                for c in Self.cases {
                    let a = try Tensor.randn(c.transA ? [c.k, c.m] : [c.m, c.k], seed: 1, on: tag)
                    let b = try Tensor.randn(c.transB ? [c.n, c.k] : [c.k, c.n], seed: 2, on: tag)
                    let out = try Tensor.empty([c.m, c.n], on: tag)
                    for useNaive in naive ? [false, true] : [false] {
                        let seconds = try medianSeconds(runs: runs) {
                            try Tensor.matmul(a, b, transA: c.transA, transB: c.transB, accumulate: false, into: out,
                                              naive: useNaive)
                            try tag.synchronize()
                        }
                        let gflops = 2 * Double(c.m) * Double(c.n) * Double(c.k) / seconds / 1e9
                        print(c.name.padding(toLength: 30, withPad: " ", startingAt: 0)
                              + tag.description.padding(toLength: 12, withPad: " ", startingAt: 0)
                              + (useNaive ? "naive" : "fast").padding(toLength: 8, withPad: " ", startingAt: 0)
                              + String(format: "%10.2f %9.1f", seconds * 1e3, gflops)
                              + (peak.map { String(format: " %7.1f%%", 100 * gflops / $0) } ?? ""))
                    }
                }
            }
        }
    }
}

extension Bench {
    struct Launch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Host time per kernel launch through CLNN's op path, beside the same kernel through "
                + "the bare OpenCL API.",
            discussion: "A trivial kernel (fill one float in place) launched back to back on one queue, through "
                + "Tensor.fill and through the C API; then an op of one element with a new result (x * 1), the same "
                + "op recorded on the tape (a tape node each too), and that op's kernel with the same two buffers "
                + "through the C API. Each ratio sets a CLNN path against the bare launch of the same kernel and "
                + "buffers: the median of the ratios of 9 rounds, in each of which every path runs one batch.")

        @Option(help: "opencl or opencl:N; cpu for the library's own host cost per op (no driver).")
        var device: String = "opencl"

        @Option(help: "Launches per batch.")
        var launches: Int = 5000

        func validate() throws {
            guard (1...10_000_000).contains(launches) else {
                throw ValidationError("--launches must be in 1...10000000, got \(launches)")
            }
        }

        func run() throws {
            let tag = try DeviceTag(parsing: device)
            if tag == .cpu {
                let (fill, result, tape) = try LaunchProbe.measureHost(launches: launches)
                print("cpu, \(launches) ops of one element (the library's host cost, no driver)")
                print(String(format: "Tensor.fill %.2f µs, x * 1 (new result) %.2f µs, x * 1 on the tape %.2f µs",
                             fill * 1e6, result * 1e6, tape * 1e6))
                return
            }
            try tag.warmUp()
            let (clnn, raw, result, tape, rawOp, ratios) = try LaunchProbe.measure(on: tag, launches: launches)
            print("device \(tag.summary), \(launches) launches of a trivial kernel")
            print("path                          enqueue µs/launch   enqueue+finish µs/launch")
            for (name, t) in [("raw OpenCL C API (fill)", raw), ("CLNN op (Tensor.fill)", clnn),
                              ("raw OpenCL C API (x * 1)", rawOp), ("CLNN op, new result (x * 1)", result),
                              ("CLNN op on the tape (x * 1)", tape)] {
                print(name.padding(toLength: 30, withPad: " ", startingAt: 0)
                      + String(format: "%17.2f %26.2f", t.enqueue * 1e6, t.total * 1e6))
            }
            print(String(format: "ratio CLNN / raw (fill), enqueue: %.2fx (goal ≤ 2x)", ratios.clnn))
            print(String(format: "ratio tape op / raw x * 1, enqueue: %.2fx (goal ≤ 2x)", ratios.tape))
        }
    }
}
