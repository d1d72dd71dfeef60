import Foundation
import NN
import TestSupport
import XCTest

/// Runs the built `clnn` binary (next to the test bundle) and checks exit codes, messages and files left behind.
class CLITestCase: XCTestCase {
    struct Run { let status: Int32; let stdout: String; let stderr: String; let seconds: Double }

    var clnn: URL {
        get throws {
            let url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
                .appendingPathComponent("clnn")
            guard FileManager.default.isExecutableFile(atPath: url.path) else {
                throw XCTSkip("no clnn binary at \(url.path)")
            }
            return url
        }
    }

    /// Runs `clnn args`. When `signalWhen` is given, `signal` is sent once it returns true. A run that outlives
    /// `timeout` seconds is killed and fails the test (a hang is a bug, never a wait).
    @discardableResult
    func run(_ args: [String], env: [String: String] = [:], directory: URL? = nil, timeout: Double = 300,
             signal: Int32 = SIGINT, signalWhen: (() -> Bool)? = nil,
             file: StaticString = #filePath, line: UInt = #line) throws -> Run {
        let process = Process()
        process.executableURL = try clnn
        process.arguments = args
        if let directory { process.currentDirectoryURL = directory }
        var environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        // The ASan run checks the suite itself for memory errors only (XCTest's own allocations look leaked), but
        // the clnn processes started here for leaks too: scripts/test-asan passes their options this way.
        if let child = environment["CLNN_CHILD_ASAN_OPTIONS"] { environment["ASAN_OPTIONS"] = child }
        process.environment = environment
        let out = Pipe(), err = Pipe()
        (process.standardOutput, process.standardError) = (out, err)
        let start = Date()
        try process.run()
        // Drain both pipes while waiting, so a chatty child never blocks on a full pipe.
        nonisolated(unsafe) var stdoutData = Data(), stderrData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { stdoutData = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { stderrData = err.fileHandleForReading.readDataToEndOfFile() }
        let deadline = start.addingTimeInterval(timeout)
        var signalled = false
        while process.isRunning && Date() < deadline {
            if let signalWhen, !signalled, signalWhen() {
                kill(process.processIdentifier, signal)
                signalled = true
            }
            usleep(10_000)
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            XCTFail("clnn \(args) still running after \(timeout) s: killed", file: file, line: line)
        }
        process.waitUntilExit()
        group.wait()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdoutData, as: UTF8.self),
                   stderr: String(decoding: stderrData, as: UTF8.self), seconds: Date().timeIntervalSince(start))
    }
}

final class CLITests: CLITestCase {
    func testBadOptionsAreUsageErrorsNamingTheOption() throws {
        let cases: [([String], String)] = [
            (["--batch-size", "0"], "--batch-size"), (["--batch-size", "-3"], "--batch-size"),
            (["--epochs", "0"], "--epochs"), (["--epochs", "abc"], "--epochs"), (["--hidden", "0"], "--hidden"),
            (["--hidden", "-5"], "--hidden"), (["--lr", "nan"], "--lr"), (["--lr", "inf"], "--lr"),
            (["--lr", "-0.1"], "--lr"), (["--momentum", "1.5"], "--momentum"), (["--loss", "hinge"], "--loss"),
            (["--seed", "-1"], "--seed"), (["--lr-schedule", "step"], "--lr-schedule"),
        ]
        for (args, option) in cases {
            let r = try run(["train"] + args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(option), "\(args): \(r.stderr)")
        }
    }

    func testUnknownDevicesListTheDevicesThereAre() throws {
        let r = try run(["train", "--device", "gpu"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("unknown device 'gpu'; available devices: cpu"), r.stderr)
        try requireOpenCL()
        let two = try run(["train", "--device", "opencl:7"], env: ["POCL_DEVICES": "pthread pthread"])
        XCTAssertEqual(two.status, 1)
        if OpenCLRuntime.shared.devices.allSatisfy({ $0.platform.contains("Portable") }) {
            XCTAssertTrue(two.stderr.contains("unknown device 'opencl:7'; available devices: cpu, opencl:0, opencl:1"),
                          two.stderr)
        }
    }

    func testDataProblemsFailCleanlyAndWriteNothing() throws {
        let folder = try temporaryFolder(self)
        let save = folder.appendingPathComponent("m.safetensors").path,
            plot = folder.appendingPathComponent("p.svg").path
        let missing = try run(["train", "--data", folder.appendingPathComponent("nope").path, "--save", save,
                               "--plot", plot])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("no such data folder"), missing.stderr)

        let data = try temporaryFolder(self)
        try writeMNISTFolder(data)
        try Data().write(to: data.appendingPathComponent("train-images-idx3-ubyte.gz"))
        let empty = try run(["train", "--data", data.path, "--save", save, "--plot", plot])
        XCTAssertEqual(empty.status, 1)
        XCTAssertTrue(empty.stderr.contains("train-images-idx3-ubyte.gz: empty file"), empty.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [], "no partial output")
    }

    func testTrainSaveEvalRoundTripAndOutOfRangeLabels() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 60, testCount: 20)
        let save = out.appendingPathComponent("m.safetensors").path
        let train = try run(["train", "--data", data.path, "--device", "cpu", "--epochs", "2", "--batch-size", "8",
                             "--hidden", "5", "--save", save, "--plot", out.appendingPathComponent("p.svg").path])
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssertTrue(train.stdout.contains("epoch 2/2"), train.stdout)
        let eval = try run(["eval", "--model", save, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stdout.contains("test acc"), eval.stdout)
        XCTAssertTrue(try String(contentsOfFile: out.appendingPathComponent("p.svg").path, encoding: .utf8)
            .hasPrefix("<svg"))

        // The model knows 3 classes; a test set with label 7 is out of range for it.
        try IDX.writeGzip(IDX.encode(IDXArray(dims: [20], bytes: (0..<20).map { $0 == 4 ? 7 : UInt8($0 % 3) })),
                          to: data.appendingPathComponent("t10k-labels-idx1-ubyte.gz").path)
        let bad = try run(["eval", "--model", save, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("t10k-labels-idx1-ubyte.gz: label 7 of example 4 is out of range "
                                          + "for a model of 3 classes"), bad.stderr)

        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: save)))
        bytes.removeLast(7)
        let truncated = out.appendingPathComponent("truncated.safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: truncated))
        let corrupt = try run(["eval", "--model", truncated, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(corrupt.status, 1)
        XCTAssertTrue(corrupt.stderr.contains(truncated), corrupt.stderr)
    }

    func testAutoFallsBackToCPUOnceWhenThereIsNoOpenCL() throws {
        let data = try temporaryFolder(self), empty = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 40, testCount: 10)
        let r = try run(["train", "--data", data.path, "--epochs", "1", "--hidden", "4"],
                        env: ["OCL_ICD_VENDORS": empty.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr.components(separatedBy: "no OpenCL device").count - 1, 1, r.stderr)
        XCTAssertTrue(r.stdout.contains("device cpu"), r.stdout)
        let devices = try run(["devices"], env: ["OCL_ICD_VENDORS": empty.path])
        XCTAssertEqual(devices.status, 0)
        XCTAssertTrue(devices.stdout.contains("* cpu"), devices.stdout)
    }

    func testNonFiniteLossStopsWithEpochAndStep() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 40, testCount: 10)
        let save = out.appendingPathComponent("m.safetensors").path
        let r = try run(["train", "--data", data.path, "--device", "cpu", "--lr", "1e30", "--lr-schedule", "constant",
                         "--batch-size", "4", "--save", save])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("at epoch 1, step"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: save), "no checkpoint of a diverged model")
    }

    func testCtrlCStopsCleanlyAndKeepsTheCheckpoint() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 200, testCount: 10)
        let save = out.appendingPathComponent("m.safetensors").path
        let r = try run(["train", "--data", data.path, "--device", "cpu", "--epochs", "100000", "--batch-size", "4",
                         "--save", save], signalWhen: { FileManager.default.fileExists(atPath: save) })
        XCTAssertEqual(r.status, 130, r.stderr)
        XCTAssertTrue(r.stderr.contains("interrupted at epoch"), r.stderr)
        XCTAssertNoThrow(try Checkpoint.load(save, on: .cpu), "the checkpoint written before Ctrl-C is intact")
    }

    func testBenchLaunchComparesCLNNWithTheRawDriver() throws {
        try requireOpenCL()
        let r = try run(["bench", "launch", "--launches", "200"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("raw OpenCL C API"), r.stdout)
        XCTAssertTrue(r.stdout.contains("ratio CLNN / raw"), r.stdout)
    }
}

/// `clnn check`: every shipped kernel against its reference, and a clear failure when a kernel is broken.
final class CheckCLITests: CLITestCase {
    func testCheckPassesOnEveryDeviceAndNamesABrokenKernel() throws {
        let good = try run(["check", "--only", "relu"])
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertTrue(good.stdout.contains(" 0 failed"), good.stdout)
        let blank = try run(["check", "--only", ", ,"])
        XCTAssertEqual(blank.status, 64, blank.stderr)
        XCTAssertTrue(blank.stderr.contains("--only ', ,' names no op"), blank.stderr)
        XCTAssertTrue(good.stdout.contains("relu backward"), good.stdout)
        guard !openCLDevices.isEmpty else { return }
        XCTAssertTrue(good.stdout.contains("max work-group"), "driver facts: \(good.stdout)")

        // activation.cl with ReLU's derivative off by a little: the forward still passes, the backward does not.
        let folder = try temporaryFolder(self)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let source = try String(contentsOfFile: root.appendingPathComponent("Kernels/activation.cl").path, encoding: .utf8)
        guard let range = source.range(of: "#define DF(x, y) ((x) > 0.0f ? 1.0f : 0.0f)") else {
            return XCTFail("activation.cl no longer defines ReLU's DF as the test expects")
        }
        try source.replacingCharacters(in: range, with: "#define DF(x, y) ((x) > 0.0f ? 1.001f : 0.0f)")
            .write(to: folder.appendingPathComponent("activation.cl"), atomically: true, encoding: .utf8)
        let bad = try run(["check", "--device", "opencl:0", "--only", "relu"],
                          env: ["CLNN_KERNELS_DIR": folder.path, "CLNN_CACHE_DIR": folder.path])
        XCTAssertEqual(bad.status, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("clnn check: FAILED relu backward 3x5 on opencl:0: output 1 element"), bad.stderr)
        XCTAssertTrue(bad.stdout.contains("FAIL"), bad.stdout)
    }
}
