import Foundation
import NN
import TestSupport
import XCTest

/// `mpirun -np 2 clnn train …` (Open MPI): the same model as one process, over shared memory and over TCP; a killed
/// process ends the job; processes with different data, options or starting files refuse to start. Skips where Open MPI
/// is not installed.
final class MPICLITests: CLITestCase {
    private var mpirun: URL {
        get throws {
            for folder in ["/usr/bin", "/usr/local/bin"]
                where FileManager.default.isExecutableFile(atPath: folder + "/mpirun") {
                return URL(fileURLWithPath: folder + "/mpirun")
            }
            throw XCTSkip("Open MPI's mpirun is not installed (apt-get install openmpi-bin)")
        }
    }

    /// Runs `mpirun <mpiArgs> -np 2 clnn <args>` (or an MPMD line), with a time limit; `whenRunning` may act on it.
    private func mpi(_ arguments: [String], timeout: Double = 120, whenRunning: ((Process) -> Bool)? = nil) throws
        -> (status: Int32, stdout: String, stderr: String, seconds: Double) {
        let process = Process()
        process.executableURL = try mpirun
        process.arguments = ["--allow-run-as-root", "--oversubscribe"] + arguments
        let out = Pipe(), err = Pipe()
        (process.standardOutput, process.standardError) = (out, err)
        nonisolated(unsafe) var stdoutData = Data(), stderrData = Data()
        let group = DispatchGroup()
        try process.run()
        DispatchQueue.global().async(group: group) { stdoutData = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { stderrData = err.fileHandleForReading.readDataToEndOfFile() }
        let start = Date()
        var acted = false
        while process.isRunning && Date().timeIntervalSince(start) < timeout {
            if let whenRunning, !acted { acted = whenRunning(process) }
            usleep(20_000)
        }
        if process.isRunning {
            process.terminate()
            XCTFail("mpirun \(arguments) still running after \(timeout) s")
        }
        process.waitUntilExit()
        group.wait()
        return (process.terminationStatus, String(decoding: stdoutData, as: UTF8.self),
                String(decoding: stderrData, as: UTF8.self),
                Date().timeIntervalSince(start))
    }

    func testTwoProcessesTrainTheModelOneProcessTrainsOverSharedMemoryAndTCP() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 60, testCount: 20)
        let clnn = try self.clnn.path
        let common = ["train", "--data", data.path, "--batch-size", "8", "--hidden", "5", "--epochs", "3",
                      "--max-steps", "20", "--momentum", "0.9"]
        let single = out.appendingPathComponent("single.safetensors").path
        XCTAssertEqual(try run(common + ["--device", "cpu", "--save", single]).status, 0)
        let expected = try Checkpoint.load(single, on: .cpu).1.parameters.map { try $0.value.toArray() }
        let sharedMemory = ["--mca", "btl", "self,vader"], tcp = ["--mca", "btl", "tcp,self"]
        // The last layout: two processes of two devices each, the batch of 8 in four shares.
        for (transport, mca, devices) in [("shared memory", sharedMemory, "cpu"), ("TCP", tcp, "cpu"),
                                          ("shared memory, 2 devices each", sharedMemory, "cpu,cpu")] {
            let save = out.appendingPathComponent("\(transport).safetensors").path
            let r = try mpi(mca + ["-np", "2", clnn] + common + ["--device", devices, "--save", save])
            XCTAssertEqual(r.status, 0, "\(transport): \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("2 processes (mpirun"), r.stdout)
            if devices == "cpu,cpu" {
                XCTAssertTrue(r.stdout.contains("(data-parallel, 2 examples each per step)"), r.stdout)
            }
            XCTAssertEqual(r.stdout.components(separatedBy: "saved \(save)").count - 1, 1,
                           "only process 0 prints and saves: \(r.stdout)")
            let got = try Checkpoint.load(save, on: .cpu).1.parameters.map { try $0.value.toArray() }
            let worst = zip(expected, got).map { zip($0, $1).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-5, "mpirun -np 2 over \(transport) against one process")
            print("mpirun -np 2 over \(transport): max |Δw| after 20 steps = \(worst)")
        }
    }

    func testAKilledProcessEndsTheJobAndTheCheckpointStays() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 200, testCount: 10)
        let save = out.appendingPathComponent("m.safetensors").path
        var killedAt: Date?
        let r = try mpi(["-np", "2", try clnn.path, "train", "--data", data.path, "--device", "cpu",
                         "--epochs", "100000",
                         "--batch-size", "4", "--hidden", "4", "--save", save], timeout: 120) { _ in
            // Once a checkpoint exists, kill -9 one of the two training processes.
            guard FileManager.default.fileExists(atPath: save) else { return false }
            let pids = self.trainingPids(data.path)
            guard let victim = pids.last else { return false }
            kill(victim, SIGKILL)
            killedAt = Date()
            return true
        }
        XCTAssertNotNil(killedAt, "a process was killed")
        XCTAssertNotEqual(r.status, 0, "the job fails")
        if let killedAt { XCTAssertLessThan(Date().timeIntervalSince(killedAt), 30, "within seconds") }
        XCTAssertNoThrow(try Checkpoint.load(save, on: .cpu), "the last checkpoint on disk stays loadable")
        XCTAssertTrue(trainingPids(data.path).isEmpty, "no training process is left running")
    }

    func testASignalToOneProcessStopsEveryProcessAtTheSameStep() throws {
        // SIGTERM (a scheduler's stop) reaching one process only: the stop is agreed at the next report, every
        // process leaves in order with the signal's status — no abort — and process 0 alone says where it stopped.
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 200, testCount: 10)
        let save = out.appendingPathComponent("m.safetensors").path
        var signalled = false
        let r = try mpi(["-np", "2", try clnn.path, "train", "--data", data.path, "--device", "cpu",
                         "--epochs", "100000",
                         "--batch-size", "4", "--hidden", "4", "--save", save], timeout: 120) { _ in
            guard FileManager.default.fileExists(atPath: save), let one = self.trainingPids(data.path).last else {
                return false
            }
            kill(one, SIGTERM)
            signalled = true
            return true
        }
        XCTAssertTrue(signalled)
        XCTAssertEqual(r.status, 128 + SIGTERM, r.stderr)
        XCTAssertEqual(r.stderr.components(separatedBy: "clnn: interrupted at epoch").count - 1, 1, r.stderr)
        XCTAssertFalse(r.stderr.contains("MPI_ABORT"), r.stderr)
        XCTAssertNoThrow(try Checkpoint.load(save, on: .cpu), "the last checkpoint stays loadable")
        XCTAssertTrue(trainingPids(data.path).isEmpty, "no training process is left running")
    }

    func testProcessesWithDifferentDataRefuseToStart() throws {
        let a = try temporaryFolder(self), b = try temporaryFolder(self)
        try writeMNISTFolder(a, trainCount: 60, testCount: 20)
        try writeMNISTFolder(b, trainCount: 59, testCount: 20)
        let clnn = try self.clnn.path
        let train = ["train", "--device", "cpu", "--batch-size", "8", "--hidden", "4", "--epochs", "1"]
        let r = try mpi(["-np", "1", clnn] + train + ["--data", a.path, ":", "-np", "1", clnn] + train
                        + ["--data", b.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("process 1 read 59 training and 20 test examples"), r.stderr)
        XCTAssertTrue(r.stderr.contains("every process must train on the same data"), r.stderr)
    }

    func testProcessesWithDifferentOptionsOrStartingFilesRefuseToStart() throws {
        // Each process parses its own command line and reads its own files (on several hosts, its own copies): the
        // first setting that differs is named before any step, not found as drifted weights at an epoch's end.
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 60, testCount: 20)
        let clnn = try self.clnn.path
        let train = ["train", "--data", data.path, "--device", "cpu", "--batch-size", "8", "--hidden", "4",
                     "--epochs", "2"]
        var r = try mpi(["-np", "1", clnn] + train + ["--lr", "0.1", ":", "-np", "1", clnn] + train + ["--lr", "0.05"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("process 1 runs with --lr 0.05 but process 0 with 0.1"), r.stderr)
        XCTAssertTrue(r.stderr.contains("every process must start the same run"), r.stderr)

        // Two checkpoints of the same shape whose weights differ.
        let a = out.appendingPathComponent("a.safetensors").path, b = out.appendingPathComponent("b.safetensors").path
        XCTAssertEqual(try run(train + ["--epochs", "1", "--seed", "1", "--save", a]).status, 0)
        XCTAssertEqual(try run(train + ["--epochs", "1", "--seed", "1", "--lr", "0.2", "--save", b]).status, 0)
        let next = out.appendingPathComponent("next.safetensors").path
        r = try mpi(["-np", "1", clnn] + train + ["--init-from", a, "--save", next, ":", "-np", "1", clnn] + train
                    + ["--init-from", b, "--save", next])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("process 1 runs with --init-from file's content"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: next), "nothing trained, nothing written")
    }

    func testAutoDeviceIsOneChoiceForEveryProcess() throws {
        // No GPU here: every process measures, process 0's choice is taken and named once.
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 60, testCount: 20)
        let save = out.appendingPathComponent("m.safetensors").path
        let r = try mpi(["-np", "2", try clnn.path, "train", "--data", data.path, "--batch-size", "8", "--hidden", "4",
                         "--epochs", "1", "--save", save])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr.components(separatedBy: "--device auto picked").count - 1, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("for every process"), r.stderr)
        XCTAssertNoThrow(try Checkpoint.load(save, on: .cpu))
    }

    /// The pids of `clnn train` processes reading `folder`.
    private func trainingPids(_ folder: String) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), pid != getpid(),
                  let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            let args = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return args.first?.hasSuffix("/clnn") == true && args.contains(folder) ? pid : nil
        }.sorted()
    }
    func testADivergingRunUnderMpirunIsReportedOnceAndEveryProcessLeavesWithStatusOne() throws {
        let data = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 60, testCount: 20)
        let r = try mpi(["--mca", "btl", "self,vader", "-np", "2", try clnn.path, "train", "--data", data.path,
                         "--device", "cpu",
                         "--batch-size", "8", "--hidden", "5", "--lr", "1e30", "--lr-schedule", "constant"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr.components(separatedBy: "loss became").count - 1
                       + r.stderr.components(separatedBy: "non-finite").count - 1,
                       1, "one report of the divergence: \(r.stderr)")
        XCTAssertFalse(r.stderr.contains("of 2): \n"), "no empty per-process lines: \(r.stderr)")
        XCTAssertFalse(r.stderr.contains("MPI_ABORT"), "the processes leave together, no abort: \(r.stderr)")
    }
}
