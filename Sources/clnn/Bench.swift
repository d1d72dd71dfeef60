import ArgumentParser
import Device
import Foundation
import NN

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks.", subcommands: [Startup.self])
}

/// Seconds since `start` (a DispatchTime uptime in ns).
func secondsSince(_ start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

extension Bench {
    struct Startup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time from start-up to the first kernel result, and each kernel file's program build.",
            discussion: "POCL caches compiled kernels in ~/.cache/pocl; set POCL_CACHE_DIR to an empty folder to time a cold start.")

        @Option(help: "opencl or opencl:N.")
        var device: String = "opencl"

        func run() throws {
            let start = DispatchTime.now().uptimeNanoseconds
            let tag = try DeviceTag(parsing: device)
            guard tag.isOpenCL else { throw ValidationError("bench startup needs an OpenCL device, got \(tag)") }
            let discovered = secondsSince(start)
            let opened = try OpenCLRuntime.shared.device(tag.index)
            let contextReady = secondsSince(start)
            let result = try Tensor([-1, 2], shape: [2], on: tag).relu().toArray()
            let firstKernel = secondsSince(start)
            precondition(result == [0, 2], "relu on \(tag) returned \(result)")
            print("device \(tag): \(opened.info.name)")
            print(String(format: "discovery %.3f s, context+queue %.3f s, first kernel result (relu build + run) %.3f s",
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
