@testable import Device
import XCTest

/// A tape node remembers the versions of the tensors its rule reads: up to three in the node, more in an array; a
/// change to any of them, whichever place holds it, is found at `backward()`.
final class SavedVersionsTests: XCTestCase {
    func testAChangeToAnySavedTensorIsFoundInlineOrBeyond() throws {
        for count in 0...6 {
            for changed in 0..<max(count, 1) {
                let tensors = try (0..<count).map { try Tensor.full([$0 + 1], value: 1, on: .cpu) }
                let saved = SavedVersions(tensors)
                XCTAssertNil(saved.firstModified, "\(count) saved, none changed")
                guard count > 0 else { continue }
                try tensors[changed].fill(2)
                let found = try XCTUnwrap(saved.firstModified, "\(count) saved, tensor \(changed) changed")
                XCTAssertEqual(found.shape, [changed + 1])
                XCTAssertEqual(found.version.value, found.at + 1, "one change since it was saved")
            }
        }
    }
}
