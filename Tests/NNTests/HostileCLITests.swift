import Foundation
import NN
import TestSupport
import XCTest

/// The failures found by trying to break `clnn` as a careless or hostile user would (issue "Reliability II"), each
/// run against the real binary: outputs that would lose data, input that used to trap or hang, leftovers, messages.
final class HostileCLITests: CLITestCase {
    private func trainArgs(_ data: URL, _ extra: [String]) -> [String] {
        ["train", "--data", data.path, "--device", "cpu", "--epochs", "1", "--batch-size", "8", "--hidden", "4"] + extra
    }

    private func dataFolder(train: Int = 40, test: Int = 10) throws -> URL {
        let data = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: train, testCount: test)
        return data
    }

    private func writeIDX(_ folder: URL, _ name: String, _ array: IDXArray) throws {
        try IDX.writeGzip(IDX.encode(array), to: folder.appendingPathComponent(name + ".gz").path)
    }

    // MARK: Data loss

    func testSpecialFilesAreRefusedAsOutputsBeforeAnyWork() throws {
        let data = try dataFolder()
        for (option, path) in [("--save", "/dev/null"), ("--save", "/dev/full"), ("--plot", "/dev/full"),
                               ("--plot", "/dev/null")] {
            let r = try run(trainArgs(data, [option, path]))
            XCTAssertNotEqual(r.status, 0, "\(option) \(path)")
            XCTAssertTrue(r.stderr.contains("\(path): \(option): is a device"), r.stderr)
            XCTAssertFalse(r.stdout.contains("epoch 1/1"), "refused before training: \(r.stdout)")
            var info = stat()
            XCTAssertEqual(stat(path, &info), 0)
            XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR, "\(path) is still a device")
        }
        let folder = try temporaryFolder(self)
        let fifo = folder.appendingPathComponent("pipe").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let r = try run(trainArgs(data, ["--save", fifo]), timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("is a FIFO"), r.stderr)
        let dir = try run(trainArgs(data, ["--plot", folder.path]))
        XCTAssertNotEqual(dir.status, 0)
        XCTAssertTrue(dir.stderr.contains("is a folder"), dir.stderr)
    }

    func testOutputsThatAreTheSameFileAreAUsageError() throws {
        let data = try dataFolder(), out = try temporaryFolder(self)
        let save = out.appendingPathComponent("m.safetensors")
        // The same path, a relative spelling of it, and a hard link to an existing file.
        let same = try run(trainArgs(data, ["--save", save.path, "--plot", save.path]))
        XCTAssertEqual(same.status, 64, same.stderr)
        XCTAssertTrue(same.stderr.contains("--save and --plot name the same file"), same.stderr)
        let relative = try run(trainArgs(data, ["--save", "./m.safetensors", "--plot", save.path]), directory: out)
        XCTAssertEqual(relative.status, 64, relative.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path), [], "nothing written")

        try Data("old".utf8).write(to: save)
        let link = out.appendingPathComponent("hard.svg").path
        XCTAssertEqual(Foundation.link(save.path, link), 0)
        let hard = try run(trainArgs(data, ["--save", save.path, "--plot", link]))
        XCTAssertEqual(hard.status, 64, hard.stderr)
        XCTAssertEqual(try String(contentsOf: save, encoding: .utf8), "old")

        // An output that is the run's lock file (renamed over it, the lock would be lost and the plot removed at
        // the end): --save's own and --resume's.
        let lock = try run(trainArgs(data, ["--save", save.path, "--plot", "./.m.state.safetensors.lock"]),
                           directory: out)
        XCTAssertEqual(lock.status, 64, lock.stderr)
        XCTAssertTrue(lock.stderr.contains("--plot ./.m.state.safetensors.lock is --save's lock file"), lock.stderr)
        let resumed = out.appendingPathComponent("r.safetensors").path
        let lockOfResume = try run(trainArgs(data, ["--resume", resumed, "--save", save.path, "--plot",
                                                    out.appendingPathComponent(".r.state.safetensors.lock").path]))
        XCTAssertEqual(lockOfResume.status, 64, lockOfResume.stderr)
        XCTAssertTrue(lockOfResume.stderr.contains("is --resume's lock file"), lockOfResume.stderr)
        XCTAssertEqual(try String(contentsOf: save, encoding: .utf8), "old")

        // An output that is one of the inputs.
        let input = data.appendingPathComponent("train-labels-idx1-ubyte.gz")
        let before = try Data(contentsOf: input)
        let clobber = try run(trainArgs(data, ["--plot", input.path]))
        XCTAssertEqual(clobber.status, 64, clobber.stderr)
        XCTAssertTrue(clobber.stderr.contains("is the input file"), clobber.stderr)
        XCTAssertEqual(try Data(contentsOf: input), before)
    }

    func testABadPlotPathFailsBeforeTrainingAndKeepsTheCheckpoint() throws {
        let data = try dataFolder(), out = try temporaryFolder(self)
        let save = out.appendingPathComponent("good.safetensors").path
        XCTAssertEqual(try run(trainArgs(data, ["--save", save])).status, 0)
        let good = try Data(contentsOf: URL(fileURLWithPath: save))
        let longName = out.appendingPathComponent(String(repeating: "x", count: 250) + ".svg").path
        for plot in ["/missing/dir/p.svg", longName, out.appendingPathComponent("missing/p.svg").path] {
            let r = try run(trainArgs(data, ["--seed", "7", "--save", save, "--plot", plot]))
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("--plot"), r.stderr)
            XCTAssertFalse(r.stdout.contains("epoch 1/1"), "checked before training: \(r.stdout)")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: save)), good, "the good checkpoint is untouched")
        }
        let empty = try run(trainArgs(data, ["--save", ""]))
        XCTAssertEqual(empty.status, 64)
        XCTAssertTrue(empty.stderr.contains("--save needs a file name"), empty.stderr)
    }

    func testDivergenceNeverSavesAndNamesOnlyACheckpointThisRunWrote() throws {
        let data = try dataFolder(), out = try temporaryFolder(self)
        let save = out.appendingPathComponent("good.safetensors").path
        XCTAssertEqual(try run(trainArgs(data, ["--save", save])).status, 0)
        let good = try Data(contentsOf: URL(fileURLWithPath: save))
        // One step per epoch: the epoch's last update is the one that diverges, after the last loss was read.
        let r = try run(trainArgs(data, ["--batch-size", "40", "--lr", "1e30", "--lr-schedule", "constant",
                                         "--save", save]))
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("no checkpoint was written"), r.stderr)
        XCTAssertFalse(r.stderr.contains("last good checkpoint"), r.stderr)
        XCTAssertTrue(r.stderr.contains("smaller --lr"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: save)), good, "non-finite weights are never saved")

        // Weight decay that overshoots: early epochs save, a later one diverges; the hint blames the decay.
        let decay = out.appendingPathComponent("decay.safetensors").path
        let d = try run(trainArgs(data, ["--epochs", "200", "--batch-size", "4", "--lr", "0.1", "--weight-decay", "30",
                                         "--lr-schedule", "constant", "--save", decay]))
        XCTAssertEqual(d.status, 1, d.stderr)
        XCTAssertTrue(d.stderr.contains("weight decay"), d.stderr)
        XCTAssertTrue(d.stderr.contains("the last good checkpoint (epoch"), d.stderr)
        let (_, model) = try Checkpoint.load(decay, on: .cpu)
        XCTAssertTrue(try model.parameters.allSatisfy { try $0.value.toArray().allSatisfy(\.isFinite) })
    }

    // MARK: Crashes, hangs and unbounded work

    func testMismatchedSplitsAreCaughtWhenTheDataLoadsOnEveryDevice() throws {
        let data = try dataFolder()
        try writeIDX(data, "t10k-images-idx3-ubyte", IDXArray(dims: [10, 4, 4], bytes: .init(repeating: 1, count: 160)))
        for device in testDevices {
            let r = try run(["train", "--data", data.path, "--device", device.description, "--epochs", "1"])
            XCTAssertEqual(r.status, 1, "\(device): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("t10k-images-idx3-ubyte.gz: test images are 4×4 pixels "
                                            + "but the training images"), r.stderr)
            XCTAssertTrue(r.stderr.contains("train-images-idx3-ubyte.gz are 3×2"), r.stderr)
        }
        // Same pixel count, another layout: accepted for training data of that shape, refused by a model trained on
        // 3×2.
        let other = try dataFolder(), out = try temporaryFolder(self)
        let save = out.appendingPathComponent("m.safetensors").path
        XCTAssertEqual(try run(trainArgs(other, ["--save", save])).status, 0)
        try writeIDX(other, "t10k-images-idx3-ubyte", IDXArray(dims: [10, 1, 6], bytes: .init(repeating: 1, count: 60)))
        let e = try run(["eval", "--model", save, "--data", other.path, "--device", "cpu"])
        XCTAssertEqual(e.status, 1, e.stderr)
        XCTAssertTrue(e.stderr.contains("images are 1×6 but the model"), e.stderr)
    }

    func testHugeNumbersAreRangeErrorsNotTraps() throws {
        let data = try dataFolder()
        for (args, fragment) in [(["--epochs", "9223372036854775807"], "--epochs must be in 1...1000000"),
                                 (["--batch-size", "9223372036854775807"], "--batch-size must be in"),
                                 (["--hidden", "65536", "65536"],
                                  "--batch-size 8: layer 3 (65536→65536) needs a weight matrix of"),
                                 (["--classes", "0"], "--classes must be in"),
                                 (["--lr", "-1"], "--lr must be a finite number > 0, got -1.0"),
                                 (["--hidden", "-5"], "--hidden sizes must be at least 1")] {
            let r = try run(trainArgs(data, args))
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(fragment), "\(args): \(r.stderr)")
        }
    }

    func testFIFOsAndDevicesAsInputsFailAtOnce() throws {
        let data = try dataFolder(), folder = try temporaryFolder(self)
        let fifo = folder.appendingPathComponent("model.safetensors").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let model = try run(["eval", "--model", fifo, "--data", data.path, "--device", "cpu"], timeout: 60)
        XCTAssertEqual(model.status, 1)
        XCTAssertTrue(model.stderr.contains("is a FIFO (named pipe), not a regular checkpoint file"), model.stderr)
        let labels = data.appendingPathComponent("train-labels-idx1-ubyte.gz").path
        try FileManager.default.removeItem(atPath: labels)
        XCTAssertEqual(mkfifo(labels, 0o600), 0)
        let train = try run(trainArgs(data, []), timeout: 60)
        XCTAssertEqual(train.status, 1)
        XCTAssertTrue(train.stderr.contains("train-labels-idx1-ubyte.gz: is a FIFO"), train.stderr)
        let dev = try run(["eval", "--model", "/dev/zero", "--data", data.path, "--device", "cpu"], timeout: 60)
        XCTAssertEqual(dev.status, 1)
        XCTAssertTrue(dev.stderr.contains("/dev/zero: is a device"), dev.stderr)
    }

    // MARK: Leftovers and lost output

    func testStaleTemporaryFilesOfDeadProcessesAreRemoved() throws {
        let data = try dataFolder(), out = try temporaryFolder(self)
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let stale = out.appendingPathComponent(".m.safetensors.tmp-\(gone.processIdentifier)")
        try Data(repeating: 0, count: 1000).write(to: stale)
        // A killed run's probe of the training state's name (a file the run stages under another name).
        let probe = out.appendingPathComponent(".m.state.safetensors.tmp-\(gone.processIdentifier)-probe")
        try Data().write(to: probe)
        let alive = out.appendingPathComponent(".m.safetensors.tmp-\(getpid())")  // a live writer's file stays
        try Data().write(to: alive)
        let r = try run(trainArgs(data, ["--save", out.appendingPathComponent("m.safetensors").path]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: out.path)),
                       ["m.safetensors", "m.state.safetensors", alive.lastPathComponent])
    }

    func testSIGTERMFinishesTheStepKeepsTheCheckpointAndTheLog() throws {
        let data = try dataFolder(train: 200), out = try temporaryFolder(self)
        let save = out.appendingPathComponent("m.safetensors").path
        let r = try run(["train", "--data", data.path, "--device", "cpu", "--epochs", "100000", "--batch-size", "4",
                         "--hidden", "4", "--save", save], signal: SIGTERM,
                        signalWhen: { FileManager.default.fileExists(atPath: save) })
        XCTAssertEqual(r.status, 143, r.stderr)
        XCTAssertTrue(r.stderr.contains("interrupted at epoch"), r.stderr)
        XCTAssertTrue(r.stdout.contains("epoch 1/100000"), "the log printed before the signal survives: \(r.stdout)")
        XCTAssertNoThrow(try Checkpoint.load(save, on: .cpu))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(),
                       ["m.safetensors", "m.state.safetensors"],
                       "no temporary left")
    }

    func testSavingKeepsTheModeAndFollowsSymbolicLinks() throws {
        let data = try dataFolder(), out = try temporaryFolder(self)
        let save = out.appendingPathComponent("m.safetensors").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: save))
        XCTAssertEqual(chmod(save, 0o600), 0)
        XCTAssertEqual(try run(trainArgs(data, ["--save", save])).status, 0)
        var info = stat()
        XCTAssertEqual(stat(save, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600, "a private checkpoint stays private")

        let link = out.appendingPathComponent("latest.safetensors").path
        XCTAssertEqual(symlink("m.safetensors", link), 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: save))
        XCTAssertEqual(try run(trainArgs(data, ["--seed", "9", "--save", link])).status, 0)
        XCTAssertEqual(lstat(link, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFLNK, "the link stays a link")
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: save)), before, "the file it points to was written")
        XCTAssertNoThrow(try Checkpoint.load(link, on: .cpu))

        let dangling = out.appendingPathComponent("new.safetensors").path
        XCTAssertEqual(symlink("sub/none.safetensors", dangling), 0)
        let r = try run(trainArgs(data, ["--save", dangling]))
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("\(dangling): --save:"), r.stderr)
    }

    // MARK: Clear messages

    func testBadDataFoldersSayWhatIsWrong() throws {
        let folder = try temporaryFolder(self)
        let loop = folder.appendingPathComponent("loop").path
        XCTAssertEqual(symlink(loop, loop), 0)
        let file = folder.appendingPathComponent("file").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        for (path, fragment) in [(loop, "loop of symbolic links"), (file, "is a regular file, not a folder"),
                                 (folder.appendingPathComponent("nope").path, "no such data folder")] {
            let r = try run(["train", "--data", path, "--device", "cpu"])
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains(fragment), "\(path): \(r.stderr)")
        }
        let none = try dataFolder(train: 0)
        let r = try run(trainArgs(none, []))
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("train-images-idx3-ubyte.gz: holds no images"), r.stderr)
    }

    func testAnUnsearchableDataFolderSaysPermissionDenied() throws {
        // NOTE: root reads any folder whatever its mode, so only a normal user can see this case.
        guard geteuid() != 0 else { throw XCTSkip("running as root: folder permissions do not apply") }
        let data = try dataFolder()
        XCTAssertEqual(chmod(data.path, 0o000), 0)
        defer { chmod(data.path, 0o755) }
        let r = try run(trainArgs(data, []))
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("permission denied") || r.stderr.contains("Permission denied"), r.stderr)
    }

    func testBrokenOverrideKernelFailsWithItsBuildLog() throws {
        try requireOpenCL()
        let data = try dataFolder(), folder = try temporaryFolder(self)
        try "__kernel void activation(int n, __global float* x) { this is not C }\n"
            .write(to: folder.appendingPathComponent("activation.cl"), atomically: true, encoding: .utf8)
        let r = try run(["train", "--data", data.path, "--device", "opencl", "--epochs", "1", "--hidden", "4"],
                        env: ["CLNN_KERNELS_DIR": folder.path])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("building OpenCL program 'activation.cl'"), r.stderr)
        XCTAssertTrue(r.stderr.contains("CL_BUILD_PROGRAM_FAILURE"), r.stderr)
        XCTAssertTrue(r.stderr.contains("build log:"), r.stderr)
        XCTAssertFalse(r.stderr.contains("build log:\n(empty)"), "the driver's log says what is wrong: \(r.stderr)")
    }

    func testBadKernelsFolderIsAnError() throws {
        try requireOpenCL()
        let data = try dataFolder(), folder = try temporaryFolder(self)
        let file = folder.appendingPathComponent("file").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        for (dir, fragment) in [(file, "not a folder"), (folder.appendingPathComponent("none").path, "No such file")] {
            let r = try run(["train", "--data", data.path, "--device", "opencl", "--epochs", "1"],
                            env: ["CLNN_KERNELS_DIR": dir])
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("CLNN_KERNELS_DIR=\(dir): \(fragment)"), r.stderr)
        }
    }

    func testClassesAreDecidedWhenTheDataLoads() throws {
        let data = try dataFolder(train: 12, test: 6)
        // Training labels 0, 2, 4 (1 and 3 have no example); test labels go up to 5.
        try writeIDX(data, "train-labels-idx1-ubyte", IDXArray(dims: [12], bytes: (0..<12).map { UInt8($0 % 3 * 2) }))
        try writeIDX(data, "t10k-labels-idx1-ubyte", IDXArray(dims: [6], bytes: [0, 1, 2, 3, 4, 5]))
        let r = try run(trainArgs(data, []))
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("t10k-labels-idx1-ubyte.gz: label 5 of example 5 is out of range"), r.stderr)
        XCTAssertTrue(r.stderr.contains("pass --classes N"), r.stderr)

        let stated = try run(trainArgs(data, ["--classes", "6"]))
        XCTAssertEqual(stated.status, 0, stated.stderr)
        XCTAssertTrue(stated.stderr.contains("warning: "), stated.stderr)
        XCTAssertTrue(stated.stderr.contains("3 of 6 classes have no training example (1, 3, 5)"), stated.stderr)
        XCTAssertTrue(stated.stdout.contains("6 classes"), stated.stdout)

        // A model of 5 classes started from: the count is the checkpoint's, and the message says so.
        let five = try temporaryFolder(self).appendingPathComponent("five.safetensors").path
        XCTAssertEqual(try run(trainArgs(data, ["--classes", "5", "--save", five])).status, 1)
        try writeIDX(data, "t10k-labels-idx1-ubyte", IDXArray(dims: [6], bytes: [0, 1, 2, 3, 4, 4]))
        XCTAssertEqual(try run(trainArgs(data, ["--classes", "5", "--save", five])).status, 0)
        try writeIDX(data, "t10k-labels-idx1-ubyte", IDXArray(dims: [6], bytes: [0, 1, 2, 3, 4, 5]))
        let from = try run(trainArgs(data, ["--init-from", five]))
        XCTAssertEqual(from.status, 1, from.stderr)
        XCTAssertTrue(from.stderr.contains("label 5 of example 5 is out of range: the class count of \(five) (5) "
                                           + "allows labels 0...4"), from.stderr)
    }

    // MARK: No OpenCL installed at all

    func testTheBinaryRunsWithoutAnOpenCLLibrary() throws {
        let ldd = Process()
        ldd.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        ldd.arguments = [try clnn.path]
        let pipe = Pipe()
        ldd.standardOutput = pipe
        if (try? ldd.run()) != nil {
            let linked = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            ldd.waitUntilExit()
            XCTAssertFalse(linked.contains("libOpenCL"), "clnn loads OpenCL at run time, never links it: \(linked)")
        }
        let missing = ["CLNN_OPENCL_LIBRARY": "/nonexistent/libOpenCL.so.1"]
        let devices = try run(["devices"], env: missing)
        XCTAssertEqual(devices.status, 0, devices.stderr)
        XCTAssertTrue(devices.stdout.contains("* cpu"), devices.stdout)
        XCTAssertTrue(devices.stdout.contains("no OpenCL library could be loaded"), devices.stdout)
        let data = try dataFolder()
        let train = try run(["train", "--data", data.path, "--epochs", "1", "--hidden", "4"], env: missing)
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssertTrue(train.stdout.contains("device cpu"), train.stdout)
    }

    /// A thread count that is not one is a usage error naming the variable (the pool would only ignore it).
    func testABadThreadCountIsAUsageError() throws {
        for value in ["0", "-1", "abc", "2x", "99999999999999999999"] {
            let r = try run(["devices"], env: ["CLNN_THREADS": value])
            XCTAssertEqual(r.status, 64, "\(value): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("CLNN_THREADS='\(value)' is not a thread count"), r.stderr)
        }
        for value in ["1", "64", ""] {
            XCTAssertEqual(try run(["devices"], env: ["CLNN_THREADS": value]).status, 0, value)
        }
    }
}
