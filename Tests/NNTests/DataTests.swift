import Foundation
import NN
import TestSupport
import XCTest

/// A fresh temporary folder, removed after the test.
func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("clnn-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Writes a tiny MNIST-layout folder: `count` images of rows×cols and labels, gz or plain per file.
func writeMNISTFolder(_ folder: URL, trainCount: Int = 6, testCount: Int = 4, rows: Int = 3, cols: Int = 2,
                      gzip: Bool = true) throws {
    func write(_ name: String, _ array: IDXArray) throws {
        let bytes = IDX.encode(array)
        if gzip {
            try IDX.writeGzip(bytes, to: folder.appendingPathComponent(name + ".gz").path)
        } else {
            try Data(bytes).write(to: folder.appendingPathComponent(name))
        }
    }
    for (prefix, count) in [("train", trainCount), ("t10k", testCount)] {
        let pixels = (0..<count * rows * cols).map { UInt8(($0 * 37 + count) % 256) }
        try write("\(prefix)-images-idx3-ubyte", IDXArray(dims: [count, rows, cols], bytes: pixels))
        try write("\(prefix)-labels-idx1-ubyte", IDXArray(dims: [count], bytes: (0..<count).map { UInt8($0 % 3) }))
    }
}

final class DataTests: XCTestCase {
    func testIDXRoundTripsThroughGzipAndPlainFiles() throws {
        let folder = try temporaryFolder(self)
        let array = IDXArray(dims: [2, 3, 4], bytes: (0..<24).map(UInt8.init))
        let plain = folder.appendingPathComponent("a").path, gz = folder.appendingPathComponent("a.gz").path
        try Data(IDX.encode(array)).write(to: URL(fileURLWithPath: plain))
        try IDX.writeGzip(IDX.encode(array), to: gz)
        XCTAssertEqual(try IDX.read(plain), array)
        XCTAssertEqual(try IDX.read(gz), array)
        let labels = IDXArray(dims: [5], bytes: [0, 1, 2, 9, 4])
        XCTAssertEqual(try IDX.parse(IDX.encode(labels), path: "l"), labels)
    }

    func testMNISTFolderLoadsBothSplitsScaledToUnitRange() throws {
        for gzip in [true, false] {
            let folder = try temporaryFolder(self)
            try writeMNISTFolder(folder, gzip: gzip)
            let (train, test) = try MNISTFolder(folder.path).load()
            XCTAssertEqual(train.count, 6)
            XCTAssertEqual(test.count, 4)
            XCTAssertEqual(train.features, 6)
            XCTAssertEqual(train.labels, [0, 1, 2, 0, 1, 2])
            XCTAssertEqual(train.images[1], Float((37 + 6) % 256) / 255)
            XCTAssertTrue(train.images.allSatisfy { $0 >= 0 && $0 <= 1 })
            XCTAssertEqual(train.classCount, 3)
        }
    }

    func testBadIDXInputIsAClearErrorNamingTheFile() throws {
        let folder = try temporaryFolder(self)
        func expect(_ bytes: [UInt8], gzip: Bool = false, _ fragment: String, line: UInt = #line) throws {
            let path = folder.appendingPathComponent("f\(line)\(gzip ? ".gz" : "")").path
            if gzip {
                try IDX.writeGzip(bytes, to: path)
            } else {
                try Data(bytes).write(to: URL(fileURLWithPath: path))
            }
            XCTAssertThrowsError(try IDX.read(path), line: line) { error in
                XCTAssertTrue("\(error)".hasPrefix(path + ": "), "\(error)", line: line)
                XCTAssertTrue("\(error)".contains(fragment), "\(error)", line: line)
            }
        }
        let good = IDX.encode(IDXArray(dims: [4, 2, 2], bytes: Array(repeating: 7, count: 16)))
        try expect([], "empty file")
        try expect([], gzip: true, "empty file")
        try expect([0, 0, 8], "too short")
        try expect([0, 0, 9, 3] + good.dropFirst(4), "magic 0x00000903")
        try expect(Array(good.dropLast(3)), "need 16 data bytes but the file has 13")
        try expect(good + [1], "need 16 data bytes but the file has 17")
        try expect([0, 0, 8, 3, 0, 0], "truncated IDX header")

        let gzPath = folder.appendingPathComponent("good.gz").path
        try IDX.writeGzip(good, to: gzPath)
        let compressed = try Data(contentsOf: URL(fileURLWithPath: gzPath))
        let truncated = folder.appendingPathComponent("truncated.gz").path
        try compressed.prefix(compressed.count - 6).write(to: URL(fileURLWithPath: truncated))
        XCTAssertThrowsError(try IDX.read(truncated)) { XCTAssertTrue("\($0)".contains(truncated), "\($0)") }
        var flipped = [UInt8](compressed)
        for i in stride(from: 12, to: flipped.count - 8, by: 3) { flipped[i] ^= 0x5A }
        let corrupt = folder.appendingPathComponent("corrupt.gz").path
        try Data(flipped).write(to: URL(fileURLWithPath: corrupt))
        XCTAssertThrowsError(try IDX.read(corrupt)) { XCTAssertTrue("\($0)".contains("corrupt.gz"), "\($0)") }
        XCTAssertThrowsError(try IDX.read(folder.appendingPathComponent("missing").path)) {
            XCTAssertTrue("\($0)".contains("no such file"), "\($0)")
        }
    }

    func testFolderProblemsNameTheFile() throws {
        XCTAssertThrowsError(try MNISTFolder("/nonexistent/clnn").load()) {
            XCTAssertEqual("\($0)", "/nonexistent/clnn: no such data folder")
        }
        let folder = try temporaryFolder(self)
        try writeMNISTFolder(folder)
        try FileManager.default.removeItem(at: folder.appendingPathComponent("t10k-labels-idx1-ubyte.gz"))
        XCTAssertThrowsError(try MNISTFolder(folder.path).load()) {
            XCTAssertTrue("\($0)".contains("t10k-labels"), "\($0)")
        }

        let mismatch = try temporaryFolder(self)
        try writeMNISTFolder(mismatch)
        try IDX.writeGzip(IDX.encode(IDXArray(dims: [5], bytes: [0, 1, 2, 0, 1])),
                          to: mismatch.appendingPathComponent("train-labels-idx1-ubyte.gz").path)
        XCTAssertThrowsError(try MNISTFolder(mismatch.path).load()) {
            XCTAssertTrue("\($0)".contains("5 labels but"), "\($0)")
        }
    }

    func testNormalizationUsesTrainingStatisticsForEverySplit() throws {
        let train = try Dataset(images: [0, 1, 2, 3, 4, 5], labels: [0, 1], features: 3)
        let test = try Dataset(images: [2.5, 2.5, 2.5], labels: [0], features: 3)
        let norm = Normalization.fit(train)
        XCTAssertEqual(norm.mean, 2.5, accuracy: 1e-6)
        XCTAssertEqual(norm.std, Float((35.0 / 12).squareRoot()), accuracy: 1e-5)
        let normalized = norm.apply(train)
        let mean = normalized.images.reduce(0, +) / 6
        let variance = normalized.images.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 6
        XCTAssertEqual(mean, 0, accuracy: 1e-6)
        XCTAssertEqual(variance, 1, accuracy: 1e-5)
        XCTAssertEqual(norm.apply(test).images, [0, 0, 0])
    }

    func testRawDatasetNormalisesLikeTheFloatPathOnEveryDevice() throws {
        let raw = try RawDataset(pixels: (0..<600).map { UInt8(($0 * 37) % 256) },
                                 labels: (0..<100).map { Float($0 % 10) }, features: 6)
        let floats = raw.dataset()
        let norm = raw.normalization
        XCTAssertEqual(norm.mean, Normalization.fit(floats).mean, accuracy: 1e-6)
        XCTAssertEqual(norm.std, Normalization.fit(floats).std, accuracy: 1e-5)
        let expected = norm.apply(floats).images
        assertClose(raw.dataset(norm).images, expected, rtol: 1e-6, atol: 1e-6, "host")
        for device in testDevices {
            let onDevice = try DeviceDataset(raw, normalization: norm, on: device)
            assertClose(try onDevice.images.toArray(), expected, rtol: 1e-6, atol: 1e-6, "\(device)")
            XCTAssertEqual(try onDevice.labels.toArray(), raw.labels)
        }
    }

    func testBatchSamplerShufflesReproduciblyAndCoversEveryExample() {
        let sampler = BatchSampler(count: 103, batchSize: 10, seed: 9)
        let order = sampler.order(epoch: 1)
        XCTAssertEqual(order.sorted(), Array(0..<103))
        XCTAssertEqual(order, BatchSampler(count: 103, batchSize: 10, seed: 9).order(epoch: 1))
        XCTAssertNotEqual(order, sampler.order(epoch: 2))
        XCTAssertNotEqual(order, BatchSampler(count: 103, batchSize: 10, seed: 10).order(epoch: 1))
        XCTAssertEqual(sampler.batchRanges.count, 11)
        XCTAssertEqual(sampler.batchRanges.last, 100..<103)
    }
}
