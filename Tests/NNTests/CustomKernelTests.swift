import Foundation
import NN
import TestSupport
import XCTest

/// Softsign, y = x / (1 + |x|), as a user would write it: its own OpenCL kernels (forward and backward in one
/// source) with CPU closures as the fallback, inside a module of its own.
final class Softsign: Module {
    static let source = """
        __kernel void softsign_forward(const int n, __global const float* x, __global float* y) {
            const int i = get_global_id(0);
            if (i < n) y[i] = x[i] / (1.0f + fabs(x[i]));
        }
        __kernel void softsign_backward(const int n, __global const float* x, __global const float* dy,
                                        __global float* dx) {
            const int i = get_global_id(0);
            if (i < n) { const float d = 1.0f + fabs(x[i]); dx[i] = dy[i] / (d * d); }
        }
        """
    static let forwardKernel = CustomKernel(name: "softsign_forward", source: source)
    static let backwardKernel = CustomKernel(name: "softsign_backward", source: source)
    private var input: Tensor?

    var parameters: [Parameter] { [] }

    func forward(_ x: Tensor) throws -> Tensor {
        input = x
        let y = try Tensor.empty(x.shape, on: x.device), n = x.count
        try Self.forwardKernel.launch(global: n, .int(n), .tensor(x), .tensor(y)) { host in
            for i in 0..<n { host[1][i] = host[0][i] / (1 + abs(host[0][i])) }
        }
        return y
    }

    func backward(_ dy: Tensor, needsInputGradient: Bool) throws -> Tensor? {
        guard let x = input else { throw DeviceError.invalidArgument(op: "Softsign.backward", "called before forward") }
        guard needsInputGradient else { return nil }
        let dx = try Tensor.empty(x.shape, on: x.device), n = x.count
        try Self.backwardKernel.launch(global: n, .int(n), .tensor(x), .tensor(dy), .tensor(dx)) { host in
            for i in 0..<n {
                let d = 1 + abs(host[0][i])
                host[2][i] = host[1][i] / (d * d)
            }
        }
        return dx
    }

    func referenceForward(_ x: DoubleMatrix, _ params: [[Double]]) -> DoubleMatrix {
        DoubleMatrix(rows: x.rows, cols: x.cols, values: x.values.map { $0 / (1 + abs($0)) })
    }
}

final class CustomKernelTests: XCTestCase {
    func testAUserKernelMatchesItsCPUClosureAndPassesTheGradientCheckOnEveryDevice() throws {
        let (rows, cols) = (7, 13)
        let xv = testValues(rows * cols, seed: 5).map { $0 * 3 }
        let layer = Softsign()
        let cpu = try layer.forward(try Tensor(xv, shape: [rows, cols])).toArray()
        assertClose(cpu, xv.map { Double($0) / (1 + abs(Double($0))) }, rtol: 1e-6, atol: 1e-7, "cpu closure")
        for device in testDevices {
            let x = try Tensor(xv, shape: [rows, cols], on: device)
            let y = try layer.forward(x)
            XCTAssertEqual(y.device, device)
            assertClose(try y.toArray(), cpu, rtol: 1e-6, atol: 1e-7, "softsign kernel on \(device)")
            for result in try GradientCheck.check(layer, input: x) {
                XCTAssertLessThan(result.worstRatio(rtol: 1e-2, atol: 1e-3), 1, "\(result.name) gradient on \(device)")
            }
            // In a model with built-in layers, trained by the library's own loop.
            let model = Sequential([try Linear(cols, 5, seed: 1, on: device), Softsign(),
                                    try Linear(5, 3, seed: 2, on: device)])
            for result in try GradientCheck.check(model, input: x) {
                XCTAssertLessThan(result.worstRatio(rtol: 1e-2, atol: 1e-3), 1,
                                  "model \(result.name) gradient on \(device)")
            }
        }
    }

    func testBuildErrorsCarryTheLogAndBadLaunchesNameTheProblem() throws {
        let x = try Tensor.zeros([4])
        let none = CustomKernel(name: "k", source: "")
        XCTAssertThrowsError(try none.launch(global: 4, .int(4)) { _ in }) {
            XCTAssertTrue("\($0)".contains("1...6 tensor arguments, got 0"), "\($0)")
        }
        try requireOpenCL()
        let device = DeviceTag.opencl(0)
        let broken = CustomKernel(name: "broken", source: "__kernel void broken(__global float* y) { "
                                  + "y[0] = undefined_name; }")
        XCTAssertThrowsError(try broken.launch(global: 1,
                                               .tensor(try Tensor.zeros([1], on: device))) { _ in }) { error in
            XCTAssertTrue("\(error)".contains("undefined_name"), "the build log names the problem: \(error)")
            XCTAssertTrue("\(error)".contains("CL_BUILD_PROGRAM_FAILURE"), "\(error)")
        }
        let misnamed = CustomKernel(name: "other", source: "__kernel void k(__global float* y) { y[0] = 1.0f; }")
        XCTAssertThrowsError(try misnamed.launch(global: 1, .tensor(try Tensor.zeros([1], on: device))) { _ in }) {
            XCTAssertTrue("\($0)".contains("CL_INVALID_KERNEL_NAME"), "\($0)")
        }
        let ok = CustomKernel(name: "k", source: "__kernel void k(__global float* x, __global float* y) { "
                              + "y[0] = x[0]; }")
        XCTAssertThrowsError(try ok.launch(global: 1, .tensor(x),
                                           .tensor(try Tensor.zeros([1], on: device))) { _ in }) {
            XCTAssertTrue("\($0)".contains("k: operands are on different devices (cpu and opencl:0)"), "\($0)")
        }
    }

    func testLaunchArgumentsAreCheckedAgainstTheKernelsDeclarationOnEveryDevice() throws {
        let scale = CustomKernel(name: "scale", source: """
            __kernel void scale(const int n, const float factor,
                                __global const float* restrict x, __global float *y) {
                const int i = get_global_id(0);
                if (i < n) y[i] = factor * x[i];
            }
            """)
        XCTAssertEqual(scale.parameters?.map(\.name), ["n", "factor", "x", "y"])
        // Comments in the declaration are not code; a kernel declared in two #ifdef branches is not checked.
        let commented = CustomKernel(name: "k", source: """
            // __kernel void k(__global float* old)
            __kernel void k(__global float* y, /* count, in floats (y*) */ const int n) \
            { if (get_global_id(0) < n) y[0] = 1.0f; }
            """)
        XCTAssertEqual(commented.parameters?.map(\.name), ["y", "n"])
        XCTAssertEqual(commented.parameters?.map(\.kind), [.tensor, .int])
        let twice = CustomKernel(name: "k", source: "#ifdef A\n__kernel void k(__global float* y)\n#else\n"
                                 + "__kernel void k(__global float* y, const int n)\n#endif\n{}")
        XCTAssertNil(twice.parameters)
        for device in testDevices {
            let x = try Tensor([1, 2, 3], shape: [3], on: device), y = try Tensor.zeros([3], on: device)
            XCTAssertThrowsError(try scale.launch(global: 3, .float(3), .float(2), .tensor(x), .tensor(y)) { _ in }) {
                XCTAssertTrue("\($0)".contains("argument 1 is a .float but parameter 'n' is declared int: "
                                               + "pass .int(…)"), "\($0)")
            }
            XCTAssertThrowsError(try scale.launch(global: 3, .int(3), .float(2), .tensor(x)) { _ in }) {
                XCTAssertTrue("\($0)".contains("takes 4 arguments (n, factor, x, y) but the launch gave 3: "
                                               + "missing 'y'"), "\($0)")
            }
            try scale.launch(global: 3, .int(3), .float(2), .tensor(x), .tensor(y)) { host in
                for i in 0..<3 { host[1][i] = 2 * host[0][i] }
            }
            XCTAssertEqual(try y.toArray(), [2, 4, 6], "\(device)")
        }
    }
}
