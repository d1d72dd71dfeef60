import Foundation
import NN
import TestSupport
import XCTest

final class ResumeCLITests: CLITestCase {
    /// The checkpoint `part` and its training state are byte for byte those of `whole` (the run never stopped).
    private func assertSameRun(_ part: String, _ whole: String, _ label: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let states = (TrainingState.path(besides: part), TrainingState.path(besides: whole))
        for (a, b, what) in [(part, whole, "model"), (states.0, states.1, "training state")] {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: a)), try Data(contentsOf: URL(fileURLWithPath: b)),
                           "\(label): the \(what), byte for byte the uninterrupted run's", file: file, line: line)
        }
    }

    func testResumeContinuesToTheSameBytesAsAnUninterruptedRunOnEveryDevice() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 60, testCount: 20)
        for device in testDevices.map(\.description) {
            let common = ["--data", data.path, "--device", device, "--epochs", "3", "--batch-size", "8",
                          "--hidden", "5",
                          "--activation", "tanh", "--optimizer", "adam", "--lr", "0.01"]
            let whole = out.appendingPathComponent("whole-\(device).safetensors").path
            let part = out.appendingPathComponent("part-\(device).safetensors").path
            let a = try run(["train"] + common + ["--save", whole])
            XCTAssertEqual(a.status, 0, a.stderr)
            let b = try run(["train"] + common + ["--save", part, "--stop-after", "1"])
            XCTAssertEqual(b.status, 0, b.stderr)
            XCTAssertTrue(b.stdout.contains("after epoch 1 of 3 (--resume"), b.stdout)
            XCTAssertFalse(b.stdout.contains("epoch 2/3"), b.stdout)
            let c = try run(["train", "--resume", part, "--data", data.path, "--device", device])
            XCTAssertEqual(c.status, 0, c.stderr)
            XCTAssertTrue(c.stdout.contains("resuming \(part) after epoch 1 of 3"), c.stdout)
            XCTAssertTrue(c.stdout.contains("Adam lr 0.01"), c.stdout)
            XCTAssertFalse(c.stdout.contains("epoch 1/3"), c.stdout)
            try assertSameRun(part, whole, "the resumed run on \(device)")
            let eval = try run(["eval", "--model", part, "--data", data.path, "--device", device])
            XCTAssertEqual(eval.status, 0, eval.stderr)
            XCTAssertTrue(eval.stdout.contains("linear(6,5),tanh,linear(5,"), eval.stdout)
        }
    }

    /// A CNN with batch norm, pooling and dropout, stopped mid-epoch (`--max-steps`) and at an epoch's end
    /// (`--stop-after`), resumes to the bytes of the run never stopped on every device: the resumed process rebuilds
    /// the model from the checkpoint, so dropout's masks must follow from the run and its step, not from the process.
    func testACNNWithDropoutResumesToTheSameBytesOnEveryDevice() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 50, testCount: 10, rows: 8, cols: 7)
        for device in testDevices.map(\.description) {
            let common = ["--data", data.path, "--device", device, "--epochs", "2", "--batch-size", "8", "--momentum",
                          "0.9", "--lr", "0.05",
                          "--arch", "conv(3,3,p=1) bn relu maxpool(2) flatten dropout(0.4) linear(3)"]
            let whole = out.appendingPathComponent("cnn-whole-\(device).safetensors").path
            XCTAssertEqual(try run(["train"] + common + ["--save", whole]).status, 0)
            for stop in [["--max-steps", "4"], ["--stop-after", "1"]] {
                let part = out.appendingPathComponent("cnn-part-\(device)\(stop[0]).safetensors").path
                let b = try run(["train"] + common + ["--save", part] + stop)
                XCTAssertEqual(b.status, 0, b.stderr)
                let c = try run(["train", "--resume", part, "--data", data.path, "--device", device])
                XCTAssertEqual(c.status, 0, c.stderr)
                try assertSameRun(part, whole, "resumed after \(stop) on \(device)")
            }
        }
    }

    /// A run resumed on another number of model copies (devices × processes) continues, with a note that the
    /// result will not be the uninterrupted run's; on the same number, no note.
    func testResumingOnAnotherDeviceListSaysTheResultDiffers() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 48, testCount: 8)
        let common = ["--data", data.path, "--epochs", "1", "--batch-size", "8", "--hidden", "5"]
        let part = out.appendingPathComponent("dp.safetensors").path
        let a = try run(["train", "--device", "cpu,cpu", "--max-steps", "2", "--save", part] + common)
        XCTAssertEqual(a.status, 0, a.stderr)
        let same = try run(["train", "--resume", part, "--data", data.path, "--device", "cpu,cpu", "--max-steps", "3"])
        XCTAssertEqual(same.status, 0, same.stderr)
        XCTAssertFalse(same.stderr.contains("model cop"), same.stderr)
        let other = try run(["train", "--resume", part, "--data", data.path, "--device", "cpu"])
        XCTAssertEqual(other.status, 0, other.stderr)
        XCTAssertTrue(other.stderr.contains("was trained on 2 model copies (devices × processes) and continues on 1"),
                      other.stderr)
    }

    func testResumeAndInitFromRefuseWhatWouldNotContinueTheRun() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 40, testCount: 10)
        let save = out.appendingPathComponent("m.safetensors").path
        let base = ["--data", data.path, "--device", "cpu"]
        XCTAssertEqual(try run(["train"] + base + ["--epochs", "2", "--hidden", "4", "--save", save]).status, 0)

        for (args, fragment) in [
            (["--resume", save, "--lr", "0.5"], "--lr 0.5 contradicts --resume \(save), which records lr 0.1"),
            (["--resume", save, "--hidden", "7"], "--hidden [7] contradicts"),
            (["--resume", save, "--optimizer", "adam"], "which records optimizer sgd"),
            (["--resume", save], "the run completed all 2 epochs; pass --epochs N"),
            (["--resume", save, "--init-from", save], "give one"),
            (["--init-from", save, "--activation", "gelu"], "--activation gelu contradicts --init-from"),
            (["--optimizer", "adam", "--momentum", "0.9"], "--momentum applies to sgd"),
            (["--epochs", "2", "--stop-after", "3"], "--stop-after 3 is beyond the run's last epoch (2)"),
        ] {
            let r = try run(["train"] + base + args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains(fragment), "\(args): \(r.stderr)")
        }

        // Training further: more epochs than planned.
        let more = try run(["train"] + base + ["--resume", save, "--epochs", "3"])
        XCTAssertEqual(more.status, 0, more.stderr)
        XCTAssertTrue(more.stdout.contains("epoch 3/3"), more.stdout)
        XCTAssertTrue(more.stderr.contains("lays the cosine schedule over the new length"), more.stderr)

        // A checkpoint without its training state resumes nothing, but starts a new run.
        try FileManager.default.removeItem(atPath: TrainingState.path(besides: save))
        let lost = try run(["train"] + base + ["--resume", save, "--epochs", "4"])
        XCTAssertNotEqual(lost.status, 0)
        XCTAssertTrue(lost.stderr.contains("no training state beside it"), lost.stderr)
        XCTAssertTrue(lost.stderr.contains("--init-from \(save)"), lost.stderr)
        let fresh = out.appendingPathComponent("fresh.safetensors").path
        let started = try run(["train"] + base + ["--init-from", save, "--epochs", "1", "--optimizer", "adam",
                                                  "--save", fresh])
        XCTAssertEqual(started.status, 0, started.stderr)
        XCTAssertTrue(started.stdout.contains("starting from the weights of \(save)"), started.stdout)
        XCTAssertTrue(started.stdout.contains("epoch 1/1"), started.stdout)
        let overwrite = try run(["train"] + base + ["--init-from", save, "--save", save])
        XCTAssertNotEqual(overwrite.status, 0)
        XCTAssertTrue(overwrite.stderr.contains("is the input file"), overwrite.stderr)
    }
}
