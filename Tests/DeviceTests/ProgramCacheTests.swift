@testable import Device
import COpenCL
import Foundation
import TestSupport
import XCTest

final class ProgramCacheTests: XCTestCase {
    /// Threads writing one cache file at once (two devices of one name compiling the same kernel) each write it:
    /// they shared one temporary name, and a rename found it gone ("cannot write the cache folder", falsely:
    /// helper-30).
    func testThreadsWritingOneCacheFileEachWriteIt() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("clnn-writes-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("programs/entry")
        let written = NSLock()
        nonisolated(unsafe) var results: [Bool] = []
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            for round in 0..<25 {
                let ok = writeCacheFile(Data("\(i) \(round)".utf8), to: file)
                written.withLock { results.append(ok) }
            }
        }
        XCTAssertEqual(results.count, 200)
        XCTAssertTrue(results.allSatisfy { $0 }, "\(results.filter { !$0 }.count) of 200 writes failed")
        let left = try FileManager.default.contentsOfDirectory(atPath: file.deletingLastPathComponent().path)
        XCTAssertEqual(left, ["entry"], "no temporary file left")
    }

    func testProgramBinariesAreCachedReusedAndReplacedWhenCorrupt() throws {
        try requireOpenCL()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("clnn-programs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        setenv("CLNN_CACHE_DIR", folder.path, 1)
        setenv("CLNN_PROGRAM_CACHE", "1", 1)
        defer { unsetenv("CLNN_CACHE_DIR"); unsetenv("CLNN_PROGRAM_CACHE") }

        let device = try OpenCLRuntime.shared.device(0)
        let source = try KernelLibrary.source("activation"),
            options = "-D ACTIVATION_RELU -D CLNN_TEST_SALT=\(UUID().uuidString.prefix(8))"
        let file = ProgramCache.file(for: device.info, source: source, options: options)
        func canMakeKernel(_ program: CLProgram) -> Bool {
            var status: cl_int = 0
            guard let kernel = clCreateKernel(program.handle, "activation", &status) else { return false }
            clReleaseKernel(kernel)
            return status == CL_SUCCESS
        }

        XCTAssertTrue(canMakeKernel(try ProgramBuilder(device: device).build(name: "activation", source: source,
                                                                             options: options)))
        let stored = try Data(contentsOf: file)
        XCTAssertFalse(stored.isEmpty, "the binary is stored after a build from source")

        XCTAssertTrue(canMakeKernel(try ProgramBuilder(device: device).build(name: "activation", source: source,
                                                                             options: options)),
                      "built from the binary")
        XCTAssertEqual(try Data(contentsOf: file), stored)

        // Damaged entries never reach the driver (rusticl aborts on a corrupt binary): garbage, a flipped payload
        // byte, a truncation. Each falls back to the source and is replaced.
        var flipped = [UInt8](stored)
        flipped[flipped.count / 2] ^= 0xFF
        for damaged in [Data("not a program binary".utf8), Data(flipped), stored.prefix(stored.count - 3)] {
            try damaged.write(to: file)
            XCTAssertTrue(canMakeKernel(try ProgramBuilder(device: device).build(name: "activation", source: source,
                                                                                 options: options)),
                          "falls back to source")
            XCTAssertEqual(ProgramCache.unwrap(try Data(contentsOf: file))?.isEmpty, false,
                           "the damaged entry is replaced")
        }
    }
}
