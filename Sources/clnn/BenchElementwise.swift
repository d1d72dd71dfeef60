import ArgumentParser
import Device
import Foundation

extension Bench {
    struct Elementwise: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Memory bandwidth of the strided elementwise and reduction kernels, beside a plain copy.",
            discussion: "A broadcast [n, n] + [n] and a sum(axis: 0) of [n, n] on every device, in GB/s of the bytes "
                + "they must move, beside the same device's plain buffer copy of an [n, n] tensor (read + write). "
                + "Goal: each at least 50% of the copy's GB/s.")

        @Option(help: "all, cpu, opencl or opencl:N.")
        var device: String = "all"

        @Option(help: "The side n of the [n, n] operand.")
        var size: Int = 4096

        @Option(help: "Timed runs per case (the median is printed).")
        var runs: Int = 7

        func validate() throws {
            guard runs > 0 else { throw ValidationError("--runs must be at least 1, got \(runs)") }
            guard (1...16384).contains(size) else { throw ValidationError("--size must be in 1...16384, got \(size)") }
        }

        func run() throws {
            let n = size
            let bytes = Double(n) * Double(n) * 4
            let devices = try benchDevices(device)
            print("case                               device      median ms      GB/s   of copy")
            for tag in devices {
                try tag.warmUp()
                let x = try Tensor.randn([n, n], seed: 1, on: tag), row = try Tensor.randn([n], seed: 2, on: tag)
                let copy = try Tensor.empty([n, n], on: tag)
                func time(_ body: () throws -> Void) throws -> Double {
                    try medianSeconds(runs: runs) {
                        try body()
                        try tag.synchronize()
                    }
                }
                let copySeconds = try time { try copy.copy(from: x) }
                let copyRate = 2 * bytes / copySeconds / 1e9
                let cases: [(String, Double, () throws -> Void)] = [
                    ("copy [n, n] (read + write)", 2 * bytes, { try copy.copy(from: x) }),
                    ("[n, n] + [n] broadcast", 2 * bytes + Double(n) * 4, { _ = try x + row }),
                    ("sum(axis: 0) of [n, n]", bytes + Double(n) * 4, { _ = try x.sum(axis: 0) }),
                    ("sum(axis: 1) of [n, n]", bytes + Double(n) * 4, { _ = try x.sum(axis: 1) }),
                ]
                for (name, moved, body) in cases {
                    let seconds = name.hasPrefix("copy") ? copySeconds : try time(body)
                    let rate = moved / seconds / 1e9
                    print(name.padding(toLength: 35, withPad: " ", startingAt: 0)
                          + tag.description.padding(toLength: 12, withPad: " ", startingAt: 0)
                          + String(format: "%9.2f %9.2f %8.0f%%", seconds * 1e3, rate, 100 * rate / copyRate))
                }
            }
        }
    }
}
