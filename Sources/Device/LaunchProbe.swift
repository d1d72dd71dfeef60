import COpenCL
import Foundation

/// Host cost of launching a trivial kernel (`fill` of one float), through CLNN's whole op path and through the bare
/// OpenCL C API on the same device and queue, for `clnn bench launch`.
@_spi(Reference) public enum LaunchProbe {
    /// Seconds per launch: to enqueue (`enqueue`) and to enqueue and finish (`total`).
    public struct Timing: Sendable {
        public let enqueue: Double
        public let total: Double
    }

    /// Each path launches `launches` times after a warm-up; the median of `runs` such batches is returned.
    public static func measure(on tag: DeviceTag, launches: Int, runs: Int = 5) throws -> (clnn: Timing, raw: Timing) {
        let t = try Tensor.empty([1], on: tag)
        guard let (device, buffer) = t.openCLMemory else {
            throw DeviceError.invalidArgument(op: "LaunchProbe", "needs an OpenCL device, got \(tag)")
        }
        let kernel = try device.kernel(KernelSource("elementwise", "fill"))

        func time(_ body: () throws -> Void) throws -> Timing {
            var samples: [(Double, Double)] = []
            for _ in 0..<(runs + 1) {
                try device.finish()
                let start = DispatchTime.now().uptimeNanoseconds
                try body()
                let enqueued = DispatchTime.now().uptimeNanoseconds
                try device.finish()
                let done = DispatchTime.now().uptimeNanoseconds
                samples.append((Double(enqueued - start) / 1e9 / Double(launches),
                                Double(done - start) / 1e9 / Double(launches)))
            }
            samples.removeFirst()  // warm-up
            return Timing(enqueue: samples.map(\.0).sorted()[samples.count / 2],
                          total: samples.map(\.1).sorted()[samples.count / 2])
        }
        let clnn = try time {
            for _ in 0..<launches { try t.fill(1) }
        }
        let raw = try time {
            var n: cl_int = 1, value: Float = 1
            var mem: cl_mem? = buffer.handle
            var global = 1
            for _ in 0..<launches {
                clSetKernelArg(kernel.handle, 0, MemoryLayout<cl_int>.size, &n)
                clSetKernelArg(kernel.handle, 1, MemoryLayout<cl_mem>.size, &mem)
                clSetKernelArg(kernel.handle, 2, MemoryLayout<Float>.size, &value)
                let status = clEnqueueNDRangeKernel(device.queue.handle, kernel.handle, 1, nil, &global, nil, 0, nil,
                                                    nil)
                try check(status, "clEnqueueNDRangeKernel(fill)")
            }
        }
        return (clnn, raw)
    }
}
