import Foundation
import NN
import TestSupport
import XCTest

/// Issue "Reliability III": a checkpoint and its training state are one thing — no lost run, no silent mix, no trap.
/// Each case was found by a hostile probe and is run here against the real binary.
final class ReliabilityCLITests: CLITestCase {
    /// A `clnn train` of 100000 epochs on `data`, saving to `path`, started (its output discarded): a run that holds
    /// its files until it is stopped.
    private func longRun(_ data: URL, saving path: String) throws -> Process {
        let process = Process()
        process.executableURL = try clnn
        process.arguments = ["train", "--data", data.path, "--device", "cpu", "--epochs", "100000", "--batch-size",
                             "4", "--hidden", "4", "--save", path]
        (process.standardOutput, process.standardError) = (FileHandle.nullDevice, FileHandle.nullDevice)
        try process.run()
        return process
    }

    private func dataFolder(train: Int = 60, test: Int = 20) throws -> URL {
        let data = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: train, testCount: test)
        return data
    }

    private func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    private func statePath(_ model: String) -> String { TrainingState.path(besides: model) }

    /// The devices a crash test covers: cpu and the first OpenCL device.
    private var crashDevices: [String] { ["cpu"] + openCLDevices.prefix(1).map(\.description) }

    // MARK: One checkpoint, atomically

    func testAKillAtEveryFileStepOfASaveLeavesTheOldRunOrTheNewOneAndEitherResumesToTheSameBytes() throws {
        let data = try dataFolder(), out = try temporaryFolder(self)
        for device in crashDevices {
            let common = ["--data", data.path, "--device", device, "--epochs", "3", "--batch-size", "8",
                          "--hidden", "5",
                          "--optimizer", "adam", "--lr", "0.01"]
            let whole = out.appendingPathComponent("whole-\(device).safetensors").path
            XCTAssertEqual(try run(["train"] + common + ["--save", whole]).status, 0)
            let base = out.appendingPathComponent("base-\(device).safetensors").path
            XCTAssertEqual(try run(["train"] + common + ["--save", base, "--stop-after", "1"]).status, 0)

            var killed = 0
            for step in 1...40 {
                let folder = try temporaryFolder(self)
                let model = folder.appendingPathComponent("m.safetensors").path
                try FileManager.default.copyItem(atPath: base, toPath: model)
                try FileManager.default.copyItem(atPath: statePath(base), toPath: statePath(model))
                // Epoch 2's save, stopped by SIGKILL at its `step`-th file-system step.
                let cut = try run(["train", "--resume", model, "--data", data.path, "--device", device,
                                   "--stop-after", "2"],
                                  env: ["CLNN_KILL_AT_FILE_STEP": String(step)])
                if cut.status == 0 { break }  // the save has fewer steps: every one was tried
                XCTAssertEqual(cut.status, SIGKILL, "\(device) step \(step): \(cut.stderr)")
                killed += 1
                let eval = try run(["eval", "--model", model, "--data", data.path, "--device", "cpu"])
                XCTAssertEqual(eval.status, 0, "\(device) step \(step): the checkpoint always reads: \(eval.stderr)")
                let resumed = try run(["train", "--resume", model, "--data", data.path, "--device", device])
                XCTAssertEqual(resumed.status, 0, "\(device) step \(step): \(resumed.stderr)")
                XCTAssertTrue(resumed.stdout.contains("resuming \(model) after epoch"), resumed.stdout)
                XCTAssertEqual(try bytes(model), try bytes(whole),
                               "\(device) step \(step): the run ends as one never stopped")
                XCTAssertEqual(try bytes(statePath(model)), try bytes(statePath(whole)),
                               "\(device) step \(step): its state too")
            }
            XCTAssertGreaterThanOrEqual(killed, 8,
                                        "\(device): a save has at least 8 file-system steps (two writes of 4)")
        }
    }

    func testACommittedStateLeftStagedSurvivesTheNextSaveCutShortToo() throws {
        let data = try dataFolder(), out = try temporaryFolder(self)
        let model = out.appendingPathComponent("m.safetensors").path
        let common = ["--data", data.path, "--device", "cpu", "--batch-size", "8", "--hidden", "5",
                      "--optimizer", "adam"]
        XCTAssertEqual(try run(["train"] + common + ["--epochs", "3", "--stop-after", "1", "--save", model]).status, 0)
        // Epoch 2 committed, its state still staged (killed before the rename into place)...
        let first = try run(["train", "--resume", model, "--data", data.path, "--device", "cpu", "--stop-after", "2"],
                            env: ["CLNN_KILL_AT_FILE_STEP": "9"])
        XCTAssertEqual(first.status, SIGKILL, first.stderr)
        XCTAssertTrue(FileManager.default.fileExists(
            atPath: out.appendingPathComponent(".m.state.safetensors.pending").path))
        // ...then another run saving there is killed while staging its own state: the epoch-2 pair must survive.
        let second = try run(["train"] + common + ["--epochs", "1", "--save", model],
                             env: ["CLNN_KILL_AT_FILE_STEP": "2"])
        XCTAssertEqual(second.status, SIGKILL, second.stderr)
        let resumed = try run(["train", "--resume", model, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resuming \(model) after epoch 2 of 3"), resumed.stdout)
    }

    func testAStateThatDoesNotBelongToItsCheckpointIsRefusedNamingBoth() throws {
        let data = try dataFolder(), out = try temporaryFolder(self)
        let base = ["--data", data.path, "--device", "cpu", "--epochs", "3", "--stop-after", "1", "--batch-size", "8",
                    "--hidden", "4"]
        let a = out.appendingPathComponent("a.safetensors").path, b = out.appendingPathComponent("b.safetensors").path
        let c = out.appendingPathComponent("c.safetensors").path
        XCTAssertEqual(try run(["train"] + base + ["--save", a, "--optimizer", "adam"]).status, 0)
        XCTAssertEqual(try run(["train"] + base + ["--save", b, "--seed", "7", "--optimizer", "adam"]).status, 0)
        XCTAssertEqual(try run(["train"] + base + ["--save", c, "--momentum", "0.9"]).status, 0)
        for other in [b, c] {  // another seed; SGD-momentum state beside an Adam checkpoint
            try FileManager.default.removeItem(atPath: statePath(a))
            try FileManager.default.copyItem(atPath: statePath(other), toPath: statePath(a))
            let r = try run(["train", "--resume", a, "--data", data.path, "--device", "cpu"])
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("\(statePath(a)): does not belong to \(a)"), r.stderr)
            XCTAssertTrue(r.stderr.contains("--init-from \(a)"), r.stderr)
            XCTAssertFalse(r.stdout.contains("epoch 2/3"), "refused before training")
        }
    }

    func testTwoSignalsDuringASaveLetTheSaveFinishThenExitWithTheSignalsStatus() throws {
        let data = try dataFolder(), out = try temporaryFolder(self)
        let model = out.appendingPathComponent("m.safetensors").path
        // Both SIGTERMs arrive at the 5th file-system step of the first save (inside the checkpoint's write).
        let r = try run(["train", "--data", data.path, "--device", "cpu", "--epochs", "3", "--batch-size", "8",
                         "--hidden", "4", "--optimizer", "adam", "--save", model],
                        env: ["CLNN_KILL_AT_FILE_STEP": "5", "CLNN_KILL_WITH": "TERM,TERM"])
        XCTAssertEqual(r.status, 143, r.stderr)
        XCTAssertTrue(r.stderr.contains("interrupted at epoch 2"), r.stderr)
        XCTAssertTrue(r.stderr.contains("(epoch 1) is saved in \(model)"), r.stderr)
        let resumed = try run(["train", "--resume", model, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resuming \(model) after epoch 1 of 3"), resumed.stdout)
    }

    // MARK: A run owns its files

    func testNoOutputMayBeTheResumedRunsFilesExceptItsOwnSaveInPlace() throws {
        let data = try dataFolder(train: 40, test: 10), out = try temporaryFolder(self)
        let model = out.appendingPathComponent("o7.safetensors").path
        let base = ["--data", data.path, "--device", "cpu", "--batch-size", "8", "--hidden", "4"]
        XCTAssertEqual(try run(["train"] + base + ["--epochs", "3", "--stop-after", "1", "--save", model]).status, 0)
        let (m, s) = (try bytes(model), try bytes(statePath(model)))
        let other = out.appendingPathComponent("o7b.safetensors").path
        let link = out.appendingPathComponent("link.svg").path
        XCTAssertEqual(symlink(model, link), 0)
        for (args, fragment) in [
            (["--save", other, "--plot", model],
             "--plot \(model) is the input file \(model) (the --resume checkpoint)"),
            (["--save", other, "--plot", statePath(model)], "(--resume's training state)"),
            (["--save", other, "--plot", link], "(the --resume checkpoint)"),
            (["--save", out.appendingPathComponent("o7").path],
             "--save's training state \(statePath(model)) is the input file"),
        ] {
            let r = try run(["train", "--resume", model] + base + args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(fragment), "\(args): \(r.stderr)")
            XCTAssertEqual(try bytes(model), m)
            XCTAssertEqual(try bytes(statePath(model)), s)
        }
        let initFrom = try run(["train", "--init-from", model] + base + ["--save", other, "--plot", statePath(model)])
        XCTAssertEqual(initFrom.status, 64, initFrom.stderr)
        XCTAssertTrue(initFrom.stderr.contains("(--init-from's training state)"), initFrom.stderr)
    }

    func testTheStateLivesBesideTheRealFileWhenSavingThroughALink() throws {
        let data = try dataFolder(train: 40, test: 10), out = try temporaryFolder(self),
            elsewhere = try temporaryFolder(self)
        let target = elsewhere.appendingPathComponent("real.safetensors").path
        let link = out.appendingPathComponent("latest.safetensors").path
        XCTAssertEqual(symlink(target, link), 0)
        let base = ["--data", data.path, "--device", "cpu", "--batch-size", "8", "--hidden", "4"]
        XCTAssertEqual(try run(["train"] + base + ["--epochs", "2", "--stop-after", "1", "--save", link]).status, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: statePath(target)), "the state is beside the model")
        XCTAssertFalse(FileManager.default.fileExists(atPath: statePath(link)), "not beside the link")
        let r = try run(["train", "--resume", link] + base)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("after epoch 1 of 2"), r.stdout)
    }

    func testASecondWriterAndAResumeOfAFileInUseAreRefusedNamingTheProcess() throws {
        let data = try dataFolder(train: 400), out = try temporaryFolder(self)
        let model = out.appendingPathComponent("m.safetensors").path
        let first = try longRun(data, saving: model)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: model) && Date() < deadline { usleep(20_000) }
        for args in [["--save", model, "--epochs", "1"], ["--resume", model], ["--resume", model, "--save",
                     out.appendingPathComponent("other.safetensors").path]] {
            let r = try run(["train", "--data", data.path, "--device", "cpu", "--batch-size", "4", "--hidden", "4"]
                + args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("is in use by process \(first.processIdentifier)"), "\(args): \(r.stderr)")
        }
        kill(first.processIdentifier, SIGTERM)
        first.waitUntilExit()
        XCTAssertEqual(first.terminationStatus, 143)
        // Released with the process (no lock file left): the run resumes now.
        for lock in [".m.state.safetensors.lock", ".m.safetensors.lock"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(lock).path), lock)
        }
        // A model saved where the run's training state lives would replace it (helper-31): refused, and after the
        // run too; the state stays the run's.
        let state = try Data(contentsOf: URL(fileURLWithPath: statePath(model)))
        let over = try run(["train", "--data", data.path, "--device", "cpu", "--hidden", "4", "--save",
                            statePath(model)])
        XCTAssertEqual(over.status, 1, over.stderr)
        XCTAssertTrue(over.stderr.contains("\(statePath(model)): is a training state (the file beside a checkpoint "
            + "that resumes its run): saving a model over it would lose that run's state; give another name"),
                      over.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: statePath(model))), state)
        let r = try run(["train", "--resume", model, "--data", data.path, "--device", "cpu"],
                        env: ["CLNN_SIGNAL_AT_STEP": "1"])
        XCTAssertEqual(r.status, 130, r.stderr)
        XCTAssertTrue(r.stdout.contains("resuming \(model)"), r.stdout)
    }

    /// A run saving its model under a name that is another run's training state (`n.state.safetensors` of
    /// `n.safetensors`) holds that name's lock from its start: the run that would write its state there is refused
    /// while it lasts, before either file exists (each locked its own state only, and the two overwrote each
    /// other's file). Once the model exists, `SavedRun.checkTarget` refuses it too (the test after this one's).
    func testARunWhoseModelIsAnotherRunsStateNameHoldsItsLock() throws {
        let data = try dataFolder(train: 400), out = try temporaryFolder(self)
        let odd = out.appendingPathComponent("n.state.safetensors").path
        let first = try longRun(data, saving: odd)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        // Held still once it holds its locks (taken before it reads anything), before its first save.
        let lock = out.appendingPathComponent(".n.state.safetensors.lock").path
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: lock) && Date() < deadline { usleep(500) }
        kill(first.processIdentifier, SIGSTOP)
        let saved = FileManager.default.fileExists(atPath: odd)
        let r = try run(["train", "--data", data.path, "--device", "cpu", "--hidden", "4", "--epochs", "1", "--save",
                         out.appendingPathComponent("n.safetensors").path])
        kill(first.processIdentifier, SIGCONT)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains(saved ? "which is not a training state"
                                              : "is in use by process \(first.processIdentifier)"), r.stderr)
        XCTAssertFalse(saved, "stopped before its first save (else the lock was not what refused)")
        kill(first.processIdentifier, SIGTERM)
        first.waitUntilExit()
        XCTAssertEqual(first.terminationStatus, 143)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("n.safetensors").path))
    }

    // MARK: --max-steps and signals never cost a resumable run

    func testMaxStepsCountsTheRunsStepsInAllAndSavesARunThatResumesToTheSameBytes() throws {
        let data = try dataFolder(), out = try temporaryFolder(self)
        let common = ["--data", data.path, "--device", "cpu", "--epochs", "3", "--batch-size", "8", "--hidden", "5",
                      "--optimizer", "adam", "--lr", "0.01"]
        let whole = out.appendingPathComponent("whole.safetensors").path
        XCTAssertEqual(try run(["train"] + common + ["--save", whole]).status, 0)
        let model = out.appendingPathComponent("r21.safetensors").path
        XCTAssertEqual(try run(["train"] + common + ["--save", model, "--stop-after", "1"]).status, 0)
        // 8 steps per epoch: step 10 in all is step 2 of epoch 2.
        let partial = try run(["train", "--resume", model, "--data", data.path, "--device", "cpu", "--max-steps", "10"])
        XCTAssertEqual(partial.status, 0, partial.stderr)
        XCTAssertTrue(partial.stdout.contains("after 2 of 8 steps (--max-steps)"), partial.stdout)
        XCTAssertTrue(partial.stdout.contains("saved \(model) at step 2 of epoch 2"), partial.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: statePath(model)),
                      "the partial run keeps a training state")
        let fewer = try run(["train", "--resume", model, "--data", data.path, "--device", "cpu", "--max-steps", "9"])
        XCTAssertEqual(fewer.status, 64, fewer.stderr)
        XCTAssertTrue(fewer.stderr.contains("--max-steps 9 counts the run's steps in all; "
                                            + "the run being resumed has taken 10"),
                      fewer.stderr)
        XCTAssertFalse(fewer.stdout.contains("data \(data.path)"), "refused once the data is counted, before the "
                       + "model is built and the data uploaded: \(fewer.stdout)")
        let rest = try run(["train", "--resume", model, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(rest.status, 0, rest.stderr)
        XCTAssertTrue(rest.stdout.contains("resuming \(model) at step 2 of epoch 2 of 3"), rest.stdout)
        XCTAssertEqual(try bytes(model), try bytes(whole), "a run cut by --max-steps ends as one never stopped")
    }

    func testASignalMidEpochSavesTheStepsTakenAndTheRunResumesToTheSameBytes() throws {
        let data = try dataFolder(train: 400), out = try temporaryFolder(self)
        let common = ["--data", data.path, "--device", "cpu", "--epochs", "2", "--batch-size", "4", "--hidden", "5",
                      "--optimizer", "adam", "--lr", "0.01"]
        let whole = out.appendingPathComponent("whole.safetensors").path
        XCTAssertEqual(try run(["train"] + common + ["--save", whole]).status, 0)
        let model = out.appendingPathComponent("m.safetensors").path
        // Ctrl-C at step 30 of epoch 1: the stop is at the next report (step 50 of 100).
        let stop = try run(["train"] + common + ["--save", model], env: ["CLNN_SIGNAL_AT_STEP": "30"])
        XCTAssertEqual(stop.status, 130, stop.stderr)
        XCTAssertTrue(stop.stderr.contains("interrupted at epoch 1, step 50; "
                                           + "the run so far (step 50 of epoch 1) is saved in \(model)"),
                      stop.stderr)
        let rest = try run(["train", "--resume", model, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(rest.status, 0, rest.stderr)
        XCTAssertEqual(try bytes(model), try bytes(whole),
                       "a run stopped by Ctrl-C mid-epoch ends as one never stopped")
    }

    // MARK: Values checked at load

    private func writePlain(_ path: String, _ tensors: [String: SafeTensors.Entry]) throws {
        try Data(try SafeTensors.encode(tensors, metadata: [:])).write(to: URL(fileURLWithPath: path))
    }

    private func plainModel(hidden: Int = 3, nan: Bool = false) -> [String: SafeTensors.Entry] {
        var w1 = testValues(hidden * 6, seed: 1)
        if nan { w1[4] = .nan }
        return ["1.weight": .init(shape: [hidden, 6], values: w1),
                "1.bias": .init(shape: [hidden], values: testValues(hidden, seed: 2)),
                "3.weight": .init(shape: [10, hidden], values: testValues(10 * hidden, seed: 3)),
                "3.bias": .init(shape: [10], values: testValues(10, seed: 4))]
    }

    func testNonFiniteWeightsAreAnErrorNamingTheTensorAndTheIndex() throws {
        let data = try dataFolder(train: 40, test: 10), out = try temporaryFolder(self)
        let path = out.appendingPathComponent("nan.safetensors").path
        try writePlain(path, plainModel(nan: true))
        for device in testDevices.map(\.description) {
            let r = try run(["eval", "--model", path, "--data", data.path, "--device", device])
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("tensor '1.weight' holds nan at [0, 4] (element 4)"), r.stderr)
            XCTAssertFalse(r.stdout.contains("test acc"), r.stdout)
        }
        let train = try run(["train", "--init-from", path, "--data", data.path, "--device", "cpu", "--max-steps", "3"])
        XCTAssertEqual(train.status, 1, train.stderr)
        XCTAssertTrue(train.stderr.contains("tensor '1.weight' holds nan"), train.stderr)
    }

    func testOverlappingOffsetsDuplicateIndicesAndContradictoryMetadataAreRefused() throws {
        let data = try dataFolder(train: 40, test: 10), out = try temporaryFolder(self)
        // Two tensors reading the same bytes: the header edited by hand.
        let good = try SafeTensors.encode(plainModel(), metadata: [:])
        let length = Int(good[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        var header = String(decoding: good[8..<(8 + length)], as: UTF8.self)
        let biasSpan = try XCTUnwrap(header.range(of: #""3.bias":\{"data_offsets":\[\d+,\d+\]"#,
                                                  options: .regularExpression))
        header.replaceSubrange(biasSpan, with: #""3.bias":{"data_offsets":[0,40]"#)
        let padded = Array(header.utf8) + [UInt8](repeating: 0x20, count: max(0, length - header.utf8.count))
        let overlap = out.appendingPathComponent("overlap.safetensors").path
        try Data(good[0..<8] + padded + good[(8 + length)...]).write(to: URL(fileURLWithPath: overlap))
        let o = try run(["eval", "--model", overlap, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(o.status, 1, o.stderr)
        XCTAssertTrue(o.stderr.contains("overlap"), o.stderr)

        var twice = plainModel()
        twice["01.weight"] = twice["1.weight"]
        twice["01.bias"] = twice["1.bias"]
        let duplicate = out.appendingPathComponent("dup.safetensors").path
        try writePlain(duplicate, twice)
        let d = try run(["eval", "--model", duplicate, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(d.status, 1, d.stderr)
        XCTAssertTrue(d.stderr.contains("tensor '01.bias' has index '01', which nn.Sequential never writes"), d.stderr)

        let meta = ["clnn.sizes": "6,3,10", "clnn.architecture": "linear(6,3),tanh,linear(3,10)",
                    "clnn.activation": "relu",
                    "clnn.loss": "cross-entropy", "clnn.classes": "10", "clnn.mean": "0", "clnn.std": "1"]
        var renamed: [String: SafeTensors.Entry] = [:]
        for (name, entry) in plainModel() {
            renamed[name.replacingOccurrences(of: "1.", with: "0.").replacingOccurrences(of: "3.", with: "2.")] = entry
        }
        let contradictory = out.appendingPathComponent("contradictory.safetensors").path
        try Data(try SafeTensors.encode(renamed, metadata: meta)).write(to: URL(fileURLWithPath: contradictory))
        let c = try run(["eval", "--model", contradictory, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(c.status, 1, c.stderr)
        XCTAssertTrue(c.stderr.contains("metadata 'clnn.activation' relu contradicts 'clnn.architecture'"), c.stderr)
        // Without 'clnn.sizes' an MLP's architecture gives its sizes: an activation that agrees is no contradiction.
        var agreeing = meta
        (agreeing["clnn.sizes"], agreeing["clnn.activation"]) = (nil, "tanh")
        let unsized = out.appendingPathComponent("unsized.safetensors").path
        try Data(try SafeTensors.encode(renamed, metadata: agreeing)).write(to: URL(fileURLWithPath: unsized))
        let u = try run(["eval", "--model", unsized, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(u.status, 0, u.stderr)
        XCTAssertTrue(u.stdout.contains("linear(6,3),tanh,linear(3,10)"), u.stdout)

        var batchNorm = plainModel()
        batchNorm["2.num_batches_tracked"] = .init(shape: [], values: [3], storedAs: "I64")
        let bn = out.appendingPathComponent("bn.safetensors").path
        try writePlain(bn, batchNorm)
        let b = try run(["eval", "--model", bn, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(b.status, 1, b.stderr)
        XCTAssertTrue(b.stderr.contains("(this is a BatchNorm's)"), b.stderr)
    }

    // MARK: Memory

    private var underSanitizer: Bool { ProcessInfo.processInfo.environment["CLNN_CHILD_ASAN_OPTIONS"] != nil }

    /// Runs clnn under `ulimit -v kib`.
    private func runLimited(_ kib: Int, _ args: [String]) throws -> Run {
        let quoted = try ([clnn.path] + args).map { "'\($0)'" }.joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "ulimit -v \(kib) && exec \(quoted)"]
        let err = Pipe(), out = Pipe()
        (process.standardError, process.standardOutput) = (err, out)
        try process.run()
        let stderr = err.fileHandleForReading.readDataToEndOfFile(),
            stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderr, as: UTF8.self), seconds: 0)
    }

    func testSizesBeyondWhatTheProcessCanGetAreErrorsNamingTheLimitNotTraps() throws {
        try XCTSkipIf(underSanitizer, "AddressSanitizer reserves more address space than any ulimit -v here allows")
        let data = try dataFolder(train: 40, test: 10), out = try temporaryFolder(self)
        let train = try runLimited(3_000_000, ["train", "--data", data.path, "--hidden", "30000", "30000",
                                               "--max-steps", "2",
                                               "--device", "cpu"])
        XCTAssertEqual(train.status, 64, train.stderr)
        XCTAssertTrue(train.stderr.contains("address-space limit (ulimit -v)"), train.stderr)

        // 6→1048575→10 declared in a 4 KB sparse file.
        let hidden = 1_048_575
        let shapes = [("0.weight", [hidden, 6]), ("0.bias", [hidden]), ("2.weight", [10, hidden]), ("2.bias", [10])]
        var header: [String: Any] = [:], offset = 0
        for (name, shape) in shapes {
            let size = 4 * shape.reduce(1, *)
            header[name] = ["dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]]
            offset += size
        }
        var json = Array(try JSONSerialization.data(withJSONObject: header))
        while json.count % 8 != 0 { json.append(0x20) }
        let sparse = out.appendingPathComponent("sparse.safetensors").path
        try Data(withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json)
            .write(to: URL(fileURLWithPath: sparse))
        XCTAssertEqual(truncate(sparse, off_t(8 + json.count + offset)), 0)
        // NOTE: enough address space for the OpenCL drivers to load (Mesa's LLVM), far less than the 12 GiB asked.
        let eval = try runLimited(4_000_000, ["eval", "--model", sparse, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(eval.status, 1, eval.stderr)
        XCTAssertTrue(eval.stderr.contains("this process can get"), eval.stderr)
        XCTAssertFalse(eval.stderr.contains("Fatal error"), eval.stderr)
    }

    // MARK: Messages that name the real cause

    func testEachUnclearMessageNamesItsRealCause() throws {
        let data = try dataFolder(train: 40, test: 10), out = try temporaryFolder(self)
        let base = ["--data", data.path, "--device", "cpu", "--batch-size", "8", "--hidden", "4", "--epochs", "1"]

        // Constant training images: refused before training, naming the file.
        let flat = try temporaryFolder(self)
        try writeMNISTFolder(flat, trainCount: 40, testCount: 10)
        try IDX.writeGzip(IDX.encode(IDXArray(dims: [40, 3, 2], bytes: .init(repeating: 7, count: 240))),
                          to: flat.appendingPathComponent("train-images-idx3-ubyte.gz").path)
        let constant = try run(["train", "--data", flat.path, "--device", "cpu", "--save",
                                out.appendingPathComponent("c.safetensors").path])
        XCTAssertEqual(constant.status, 1, constant.stderr)
        XCTAssertTrue(constant.stderr.contains("train-images-idx3-ubyte.gz: every training pixel has the same value"),
                      constant.stderr)
        XCTAssertFalse(constant.stdout.contains("epoch 1/"), constant.stdout)
        // And `clnn inspect` (its statistics divided by that zero).
        let inspected = try run(["inspect", "--data", flat.path, "--device", "cpu"])
        XCTAssertEqual(inspected.status, 1, inspected.stderr)
        XCTAssertTrue(inspected.stderr.contains("train-images-idx3-ubyte.gz: every training pixel has the same value"),
                      inspected.stderr)
        XCTAssertFalse(inspected.stderr.contains("--normalization"), "inspect has no such option: \(inspected.stderr)")
        // And `clnn eval` of a plain state dict, which normalises by the training set's statistics.
        let plain = out.appendingPathComponent("plain.safetensors").path
        try writePlain(plain, plainModel())
        let evaluated = try run(["eval", "--model", plain, "--data", flat.path, "--device", "cpu"])
        XCTAssertEqual(evaluated.status, 1, evaluated.stderr)
        XCTAssertTrue(evaluated.stderr.contains("train-images-idx3-ubyte.gz: every training pixel has the same value"),
                      evaluated.stderr)

        // One stray label: the warning names it and its example.
        let stray = try temporaryFolder(self)
        try writeMNISTFolder(stray, trainCount: 40, testCount: 10)
        var labels = (0..<40).map { UInt8($0 % 10) }
        labels[17] = 200
        try IDX.writeGzip(IDX.encode(IDXArray(dims: [40], bytes: labels)),
                          to: stray.appendingPathComponent("train-labels-idx1-ubyte.gz").path)
        let s = try run(["train", "--data", stray.path, "--device", "cpu", "--max-steps", "1"])
        XCTAssertTrue(s.stderr.contains("the largest training label is 200 (example 17)"), s.stderr)

        // A folder holding both x and x.gz.
        let both = try temporaryFolder(self)
        try writeMNISTFolder(both, trainCount: 40, testCount: 10)
        try writeMNISTFolder(both, trainCount: 40, testCount: 10, gzip: false)
        let b = try run(["train", "--data", both.path, "--device", "cpu", "--max-steps", "1"])
        XCTAssertEqual(b.status, 1, b.stderr)
        XCTAssertTrue(b.stderr.contains("both train-images-idx3-ubyte.gz and train-images-idx3-ubyte "
                                        + "are in the data folder"), b.stderr)

        // A 4-D unsigned-byte IDX.
        let fourD = try temporaryFolder(self)
        try writeMNISTFolder(fourD, trainCount: 40, testCount: 10)
        try IDX.writeGzip(IDX.encode(IDXArray(dims: [40, 1, 3, 2], bytes: .init(repeating: 7, count: 240))),
                          to: fourD.appendingPathComponent("train-images-idx3-ubyte.gz").path)
        let f = try run(["train", "--data", fourD.path, "--device", "cpu"])
        XCTAssertTrue(f.stderr.contains("(magic 0x00000804) of unsigned-byte values with 4 dimensions"), f.stderr)

        // A batch larger than the data is the data, whatever its nominal size.
        let huge = try run(["train"] + base + ["--batch-size", "16777216"])
        XCTAssertEqual(huge.status, 0, huge.stderr)

        // Options.
        let comma = try run(["train"] + base + ["--device", "cpu,"])
        XCTAssertTrue(comma.stderr.contains("entry 2 of the list is empty"), comma.stderr)
        let layouts = try run(["bench", "scale", "--layouts", "", "--data", data.path])
        XCTAssertEqual(layouts.status, 64, layouts.stderr)
        XCTAssertTrue(layouts.stderr.contains("layout 1 is empty"), layouts.stderr)
        let batch = try run(["bench", "train", "--batch-size", "0", "--data", data.path])
        XCTAssertEqual(batch.status, 64, batch.stderr)
        XCTAssertTrue(batch.stderr.contains("--batch-size must be in 1...65536, got 0"), batch.stderr)

        // A library that is not an OpenCL ICD loader.
        let z = try run(["devices"], env: ["CLNN_OPENCL_LIBRARY": "libz.so.1"])
        XCTAssertTrue(z.stdout.contains("libz.so.1 lacks clGetPlatformIDs: it is not an OpenCL ICD loader"), z.stdout)

        // An unwritable cache folder is said, with its reason.
        if !openCLDevices.isEmpty {
            let blocker = out.appendingPathComponent("file").path
            try Data("x".utf8).write(to: URL(fileURLWithPath: blocker))
            let cache = try run(["train"] + base + ["--device", "opencl", "--max-steps", "1"],
                                env: ["CLNN_CACHE_DIR": blocker + "/cache", "CLNN_GEMM_TUNE": "0",
                                      "CLNN_PROGRAM_CACHE": "1"])
            XCTAssertEqual(cache.status, 0, cache.stderr)
            XCTAssertTrue(cache.stderr.contains("cannot write the cache folder \(blocker)/cache"), cache.stderr)
            XCTAssertTrue(cache.stderr.contains("(Not a directory)"), cache.stderr)
        }
    }

    func testAReadOnlyFileSystemIsNamedAsSuch() throws {
        let mountPoint = try temporaryFolder(self)
        guard geteuid() == 0, mount("none", mountPoint.path, "tmpfs", UInt(MS_RDONLY), nil) == 0 else {
            throw XCTSkip("cannot mount a read-only tmpfs here (needs root with CAP_SYS_ADMIN)")
        }
        defer { umount(mountPoint.path) }
        let data = try dataFolder(train: 40, test: 10)
        let r = try run(["train", "--data", data.path, "--device", "cpu", "--save",
                         mountPoint.appendingPathComponent("m.safetensors").path])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("the file system is read-only"), r.stderr)

        // A run saved on a file system that is read-only now resumes, saving elsewhere.
        XCTAssertEqual(mount("none", mountPoint.path, "tmpfs", UInt(MS_REMOUNT), nil), 0)
        let model = mountPoint.appendingPathComponent("r.safetensors").path
        let base = ["--data", data.path, "--device", "cpu", "--batch-size", "8", "--hidden", "4"]
        XCTAssertEqual(try run(["train"] + base + ["--epochs", "2", "--stop-after", "1", "--save", model]).status, 0)
        XCTAssertEqual(mount("none", mountPoint.path, "tmpfs", UInt(MS_REMOUNT | MS_RDONLY), nil), 0)
        let elsewhere = try temporaryFolder(self).appendingPathComponent("r.safetensors").path
        let resumed = try run(["train", "--resume", model, "--save", elsewhere] + base)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("after epoch 1 of 2"), resumed.stdout)
    }
}
