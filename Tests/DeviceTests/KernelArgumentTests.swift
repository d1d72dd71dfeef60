@testable import Device
import TestSupport
import XCTest

/// Built-in ops name each kernel argument; until a launch of a kernel has matched, every name and kind is checked
/// against the parameters the driver reports, so an argument in the wrong place is an error naming both.
final class KernelArgumentTests: XCTestCase {
    func testAnArgumentInTheWrongPlaceIsANamedErrorNotAWrongRead() throws {
        try requireOpenCL()
        for tag in openCLDevices {
            let device = try OpenCLRuntime.shared.device(tag.index)
            // A fresh program (its own options) so that no launch has matched its kernel yet.
            let kernel = try device.kernel("activation", "activation",
                                           options: Activation.relu.options + " -D CLNN_ARGUMENT_TEST=\(tag.index)")
            XCTAssertEqual(kernel.parameters, [KernelParameter(name: "n", kind: .int),
                                               KernelParameter(name: "x", kind: .buffer),
                                               KernelParameter(name: "y", kind: .buffer)], "\(tag)")
            let x = try Tensor([-1, 2, -3, 4, 5], shape: [5], on: tag), y = try Tensor.zeros([5], on: tag)
            guard case .opencl(let xb) = x.storage, case .opencl(let yb) = y.storage else { return XCTFail("\(tag)") }
            func launch(_ arguments: (inout KernelArguments) throws -> Void) -> String {
                do {
                    try device.launch(kernel, global: WorkSize(5), arguments)
                    return "launched"
                } catch {
                    return "\(error)"
                }
            }
            XCTAssertTrue(launch { a in try a.buffer("x", xb); try a.int("n", 5); try a.buffer("y", yb) }
                .contains("argument 1 is given as 'x' (buffer) but the kernel declares 'n' (int) there"))
            XCTAssertTrue(launch { a in try a.int("n", 5); try a.buffer("z", xb); try a.buffer("y", yb) }
                .contains("argument 2 is given as 'z' (buffer) but the kernel declares 'x' (buffer) there"))
            XCTAssertTrue(launch { a in try a.int("n", 5); try a.buffer("x", xb) }
                .contains("missing 'y' (buffer)"))
            XCTAssertTrue(launch { a in
                try a.int("n", 5); try a.buffer("x", xb); try a.buffer("y", yb); try a.int("extra", 0)
            }.contains("argument 4 'extra' (int) is one more than the kernel's 3 parameters"))
            XCTAssertEqual(try y.toArray(), [0, 0, 0, 0, 0], "\(tag): nothing ran")
            XCTAssertEqual(launch { a in try a.int("n", 5); try a.buffer("x", xb); try a.buffer("y", yb) }, "launched")
            XCTAssertEqual(try y.toArray(), [0, 2, 0, 4, 5], "\(tag)")
        }
    }

    /// Every kernel CLNN launches in training reports its parameters (so every launch was checked): the ops of one
    /// training step of each fused form run, then every kernel built so far is looked at.
    func testEveryBuiltInKernelTheDriverBuiltReportsItsParameters() throws {
        try requireOpenCL()
        for tag in openCLDevices {
            let device = try OpenCLRuntime.shared.device(tag.index)
            let x = try Tensor.randn([7, 5], seed: 1, on: tag), w = try Tensor.randn([5, 3], seed: 2, on: tag)
            let b = try Tensor.zeros([3], on: tag), z = try Tensor.empty([7, 3], on: tag),
                y = try Tensor.empty([7, 3], on: tag)
            let order = try Tensor([6, 5, 4, 3, 2, 1, 0], shape: [7], on: tag)
            try Tensor.linear(try Rows(x, order: order, offset: 0, count: 7), weight: w, bias: b, activation: .relu,
                              preActivation: z, output: y)
            try Tensor.linearBackward(try Rows(x, order: order, offset: 0, count: 7), y,
                                      weightGradient: try Tensor.empty([5, 3], on: tag),
                                      biasGradient: b, accumulate: false)
            let labels = try Tensor([0, 1, 2, 0, 1, 2, 0], shape: [7], on: tag), out = try Tensor.empty([1], on: tag)
            try y.meanLoss(.softmaxCrossEntropy, labels: labels, grad: z, into: out)
            // The strided kernels too (int8 layouts): elementwise with broadcasting, reductions both ways, argmax.
            _ = try y.sum()
            _ = try (y + b).max(axis: 0).argmax()
            _ = try Tensor.zeros([1000], on: tag).sum(axis: 0)
            try device.finish()
            let unchecked = device.builtKernels.filter { $0.parameters == nil }.map(\.name)
            XCTAssertEqual(unchecked, [], "\(tag): kernels whose parameters the driver did not report")
            XCTAssertFalse(device.builtKernels.isEmpty)
        }
    }
}
