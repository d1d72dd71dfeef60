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

    /// Each path launches `launches` times after a warm-up; the median of `runs` such batches is returned, and each
    /// ratio (`clnn` over `raw`, `tape` over `rawOp`, enqueue times) as the median of its rounds' ratios: the paths
    /// take turns within a round, so a ratio sets batches run under the same load side by side.
    /// `clnn` is `Tensor.fill` (one buffer written in place) and `raw` the same kernel and buffer through the C API;
    /// `result` times an op with a new result (`x * 1` of a one-element `x`), `tape` the same op recorded on the tape
    /// (`x` requires a gradient: a tape node per launch too), and `rawOp` the same op's kernel (`unary_affine`, `x`
    /// read, another buffer written) through the C API.
    public static func measure(on tag: DeviceTag, launches: Int, runs: Int = 9)
        throws -> (clnn: Timing, raw: Timing, result: Timing, tape: Timing, rawOp: Timing,
                   ratios: (clnn: Double, tape: Double)) {
        let t = try Tensor.empty([1], on: tag)
        let x = try Tensor([1], shape: [1], on: tag), tracked = try Tensor([1], shape: [1], on: tag)
        let out = try Tensor.empty([1], on: tag)
        guard let (device, buffer) = t.openCLMemory, let (_, xBuffer) = x.openCLMemory,
              let (_, outBuffer) = out.openCLMemory else {
            throw DeviceError.invalidArgument(op: "LaunchProbe", "needs an OpenCL device, got \(tag)")
        }
        let fillKernel = try device.kernel(PointwiseTable.fill.forward)
        let affineKernel = try device.kernel(PointwiseTable.affine.forward)

        // One batch of one path: seconds per launch to enqueue, and to enqueue and finish.
        func batch(_ body: () throws -> Void) throws -> (Double, Double) {
            try device.finish()
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            let enqueued = DispatchTime.now().uptimeNanoseconds
            try device.finish()
            let done = DispatchTime.now().uptimeNanoseconds
            return (Double(enqueued - start) / 1e9 / Double(launches), Double(done - start) / 1e9 / Double(launches))
        }
        // `launches` launches of a unary kernel (Kernels/pointwise.cl: AXES, then x and out with their layouts, then
        // p and q) over one element, every argument set each time as CLNN does; each call's status is checked.
        func rawLaunches(_ kernel: CLKernel, x: CLBuffer, out: CLBuffer) throws {
            var one: cl_int = 1, zero: cl_int = 0, value: Float = 1
            var layout = (cl_int(1), cl_int(0), cl_int(0), cl_int(0), cl_int(0), cl_int(0), cl_int(0), cl_int(0))
            var global = (1, 1)
            let int = MemoryLayout<cl_int>.size, int8 = MemoryLayout.size(ofValue: layout)
            let name = kernel.name
            func set(_ index: cl_uint, _ size: Int, _ value: UnsafeRawPointer) throws {
                try check(clSetKernelArg(kernel.handle, index, size, value), "clSetKernelArg(\(name), \(index))")
            }
            for _ in 0..<launches {
                try set(0, int, &one)  // rank
                try set(1, int8, &layout)  // shape
                try set(2, int, &one)  // inner
                try set(3, int, &one)  // rows
                for (first, operand) in [(cl_uint(4), x), (7, out)] {
                    var mem: cl_mem? = operand.handle
                    try set(first, MemoryLayout<cl_mem>.size, &mem)
                    try set(first + 1, int, &zero)  // offset
                    try set(first + 2, int8, &layout)  // strides
                }
                try set(10, MemoryLayout<Float>.size, &value)  // p
                try set(11, MemoryLayout<Float>.size, &zero)  // q (0 as a float too)
                let status = withUnsafePointer(to: &global) { sizes in
                    sizes.withMemoryRebound(to: Int.self, capacity: 2) {
                        clEnqueueNDRangeKernel(device.queue.handle, kernel.handle, 2, nil, $0, nil, 0, nil, nil)
                    }
                }
                try check(status, "clEnqueueNDRangeKernel(\(name))")
            }
        }
        tracked.requiresGrad = true
        let paths: [() throws -> Void] = [
            { for _ in 0..<launches { try t.fill(1) } },
            { try rawLaunches(fillKernel, x: buffer, out: buffer) },
            { for _ in 0..<launches { _ = try x * 1 } },
            { for _ in 0..<launches { _ = try tracked * 1 } },
            { try rawLaunches(affineKernel, x: xBuffer, out: outBuffer) },
        ]
        // NOTE: the paths take turns within each round, so that a change in the machine's load meets them all.
        var samples = paths.map { _ in [(Double, Double)]() }
        for round in 0..<(runs + 1) {
            for (i, path) in paths.enumerated() {
                let sample = try batch(path)
                if round > 0 { samples[i].append(sample) }  // round 0 warms up
            }
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let timings = samples.map { s in Timing(enqueue: median(s.map(\.0)), total: median(s.map(\.1))) }
        func ratio(_ a: Int, _ b: Int) -> Double { median(zip(samples[a], samples[b]).map { $0.0 / $1.0 }) }
        return (timings[0], timings[1], timings[2], timings[3], timings[4], (ratio(0, 1), ratio(3, 4)))
    }

    /// The same CLNN paths on `cpu` (an op's host cost with no driver at all): seconds per op of `fill`, `x * 1`
    /// with a new result, and `x * 1` recorded on the tape, medians of `runs` interleaved batches.
    public static func measureHost(launches: Int, runs: Int = 5) throws -> (fill: Double, result: Double,
                                                                            tape: Double) {
        let t = try Tensor.empty([1], on: .cpu)
        let x = try Tensor([1], shape: [1], on: .cpu), tracked = try Tensor([1], shape: [1], on: .cpu)
        tracked.requiresGrad = true
        let paths: [() throws -> Void] = [
            { for _ in 0..<launches { try t.fill(1) } },
            { for _ in 0..<launches { _ = try x * 1 } },
            { for _ in 0..<launches { _ = try tracked * 1 } },
        ]
        var samples = paths.map { _ in [Double]() }
        for round in 0..<(runs + 1) {
            for (i, path) in paths.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                try path()
                if round > 0 {
                    samples[i].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(launches))
                }
            }
        }
        let medians = samples.map { $0.sorted()[$0.count / 2] }
        return (medians[0], medians[1], medians[2])
    }
}
