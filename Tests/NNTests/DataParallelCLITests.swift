import Foundation
import NN
import TestSupport
import XCTest

final class DataParallelCLITests: CLITestCase {
    func testADeviceListTrainsTheModelOneDeviceTrains() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 60, testCount: 20)
        func weights(_ device: String) throws -> [[Float]] {
            let save = out.appendingPathComponent("\(device).safetensors").path
            let r = try run(["train", "--data", data.path, "--device", device, "--batch-size", "8", "--hidden", "5",
                             "--epochs", "3", "--max-steps", "20", "--momentum", "0.9", "--save", save])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("after 4 of 8 steps (--max-steps)"), r.stdout)
            XCTAssertTrue(r.stdout.contains("saved \(save) at step 4 of epoch 3 of 3 (--max-steps; --resume"), r.stdout)
            if device.contains(",") {
                XCTAssertTrue(r.stdout.contains("(data-parallel, 4 examples each per step)"), r.stdout)
            }
            XCTAssertTrue(FileManager.default.fileExists(atPath: TrainingState.path(besides: save)),
                          "a partial epoch keeps its state")
            return try Checkpoint.load(save, on: .cpu).1.parameters.map { try $0.value.toArray() }
        }
        let single = try weights("cpu")
        var lists = ["cpu,cpu"]
        if let first = openCLDevices.first { lists.append("\(first),cpu") }
        if openCLDevices.count >= 2 { lists.append("opencl:0,opencl:1") }
        for list in lists {
            let worst = zip(single, try weights(list)).map { zip($0, $1).map { abs($0 - $1) }.max() ?? 0 }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-5, list)
        }
        for (args, fragment) in [(["--device", "cpu,cpu,cpu", "--batch-size", "8"],
                                  "--batch-size 8 cannot be split evenly across the 3 devices"),
                                 (["--device", "cpu,auto"], "auto is for one device"),
                                 (["--device", "cpu,opencl:9"], "unknown device 'opencl:9'"),
                                 (["--max-steps", "0"], "--max-steps must be ≥ 1")] {
            let r = try run(["train", "--data", data.path] + args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains(fragment), "\(args): \(r.stderr)")
        }
    }
}
