import Foundation

/// Images as rows of floats with their class labels, on the host.
public struct Dataset: Sendable {
    /// [count, features], row-major. (Set only here, where its size is kept to `count` rows: `Normalization.apply`
    /// changes values in place; a dataset of other images is a new `Dataset`, checked.)
    public internal(set) var images: [Float]
    /// Class indices as floats, [count].
    public let labels: [Float]
    /// Examples.
    public let count: Int
    /// Values per example (pixels).
    public let features: Int

    /// `images` holds `labels.count` rows of `features` values; anything else is an error naming both counts.
    public init(images: [Float], labels: [Float], features: Int) throws {
        try checkRows(op: "Dataset", values: images.count, labels: labels.count, features: features, of: "images")
        self.images = images
        self.labels = labels
        self.count = labels.count
        self.features = features
    }

    /// A dataset whose counts are known to agree (made from one that was checked).
    fileprivate init(checked images: [Float], labels: [Float], features: Int) {
        (self.images, self.labels, self.count, self.features) = (images, labels, labels.count, features)
    }

    /// The first `n` examples.
    public func prefix(_ n: Int) -> Dataset {
        let n = min(max(n, 0), count)
        return Dataset(checked: Array(images[0..<n * features]), labels: Array(labels[0..<n]), features: features)
    }

    /// The largest label + 1 (labels that are not whole numbers in 0..<2²⁴ — NaN, 1e30 — are the trainer's to
    /// refuse: they count as none here).
    public var classCount: Int { labelClassCount(labels) }
}

/// Images as the file's bytes (0...255, a quarter of the memory of floats) with their labels: what the trainer
/// loads, so that the full float copy exists only on the device.
public struct RawDataset: Sendable {
    /// [count, features] pixel bytes.
    public let pixels: [UInt8]
    /// Class indices as floats, [count].
    public let labels: [Float]
    /// Examples.
    public let count: Int
    /// Values per example (pixels).
    public let features: Int
    /// [rows, cols] of one image, when the data came from image files (rows · cols = features).
    public let imageShape: [Int]?

    /// `pixels` holds `labels.count` rows of `features` bytes, and `imageShape` (when given) has `features` pixels;
    /// anything else is an error naming what disagrees.
    public init(pixels: [UInt8], labels: [Float], features: Int, imageShape: [Int]? = nil) throws {
        try checkRows(op: "RawDataset", values: pixels.count, labels: labels.count, features: features, of: "pixels")
        if let imageShape {
            guard imageShape.count == 2, imageShape.allSatisfy({ $0 > 0 }),
                  imageShape[0].multipliedReportingOverflow(by: imageShape[1]) == (features, false) else {
                throw DeviceError.invalidArgument(op: "RawDataset", "an image shape of \(imageShape) does not hold "
                    + "\(features) features (expected [rows, cols] with rows × cols = features)")
            }
        }
        self.pixels = pixels
        self.labels = labels
        self.count = labels.count
        self.features = features
        self.imageShape = imageShape
    }

    /// Pixels scaled to [0, 1] and normalised with `normalization` (none: only scaled).
    public func dataset(_ normalization: Normalization? = nil) -> Dataset {
        let table = Self.table(normalization)
        return Dataset(checked: pixels.map { table[Int($0)] }, labels: labels, features: features)
    }

    /// The float value of each byte: (b / 255 − mean) / std.
    static func table(_ normalization: Normalization?) -> [Float] {
        let mean = normalization?.mean ?? 0, std = normalization?.std ?? 1
        let scale = std > 0 ? 1 / std : 1
        return (0..<256).map { (Float($0) / 255 - mean) * scale }
    }

    /// The mean and standard deviation of the scaled pixels, from a histogram of the bytes (exact, in Double).
    public var normalization: Normalization {
        var histogram = [Int](repeating: 0, count: 256)
        for b in pixels { histogram[Int(b)] += 1 }
        var sum = 0.0, sumSquares = 0.0
        for (value, n) in histogram.enumerated() {
            let x = Double(value) / 255
            sum += x * Double(n)
            sumSquares += x * x * Double(n)
        }
        let total = Double(max(pixels.count, 1))
        let mean = sum / total
        return Normalization(mean: Float(mean), std: Float(max(sumSquares / total - mean * mean, 0).squareRoot()))
    }

    /// The largest label + 1 (labels that are not whole numbers in 0..<2²⁴ — NaN, 1e30 — are the trainer's to
    /// refuse: they count as none here).
    public var classCount: Int { labelClassCount(labels) }
}

/// Refuses `values` that are not `labels` rows of `features` each (a negative count, or a product that overflows).
private func checkRows(op: String, values: Int, labels: Int, features: Int, of what: String) throws {
    guard features >= 0 else {
        throw DeviceError.invalidArgument(op: op, "features must be at least 0, got \(features)")
    }
    let (expected, overflow) = labels.multipliedReportingOverflow(by: features)
    guard !overflow, values == expected else {
        throw DeviceError.invalidArgument(op: op, "\(values) \(what) for \(labels) labels of \(features) features "
            + "(expected labels × features = \(overflow ? "more than Int.max" : String(expected)))")
    }
}

/// A folder in the MNIST layout: the four standard files, each `.gz` or plain.
public struct MNISTFolder: Sendable {
    /// Debian's `dataset-fashion-mnist`.
    public static let defaultPath = "/usr/share/datasets/fashion-mnist"
    /// The training images file’s name (without `.gz`).
    public static let trainImages = "train-images-idx3-ubyte"
    /// The training labels file’s name (without `.gz`).
    public static let trainLabels = "train-labels-idx1-ubyte"
    /// The test images file’s name (without `.gz`).
    public static let testImages = "t10k-images-idx3-ubyte"
    /// The test labels file’s name (without `.gz`).
    public static let testLabels = "t10k-labels-idx1-ubyte"

    /// The folder.
    public let path: String
    /// The folder at `path` (nothing is read yet).
    public init(_ path: String = MNISTFolder.defaultPath) { self.path = path }

    /// Pixels scaled to [0, 1]; no normalisation yet.
    public func load() throws -> (train: Dataset, test: Dataset) {
        let (train, test) = try loadRaw()
        return (train.dataset(), test.dataset())
    }

    /// Both splits with the pixels as bytes. The splits must agree: the same image shape, and at least one
    /// example each.
    public func loadRaw() throws -> (train: RawDataset, test: RawDataset) {
        try checkFolder()
        let train = try split(Self.trainImages, Self.trainLabels), test = try split(Self.testImages, Self.testLabels)
        if train.imageShape != test.imageShape {
            let shape = { (s: [Int]?) in s.map { $0.map(String.init).joined(separator: "×") } ?? "?" }
            throw DataError(try file(Self.testImages), "test images are \(shape(test.imageShape)) pixels "
                            + "but the training "
                            + "images \(try file(Self.trainImages)) are \(shape(train.imageShape)); "
                            + "both splits must have one shape")
        }
        return (train, test)
    }

    /// The test split only, pixels scaled to [0, 1].
    public func loadTest() throws -> Dataset {
        try loadTestRaw().dataset()
    }

    /// The test split only, pixels as bytes.
    public func loadTestRaw() throws -> RawDataset {
        try checkFolder()
        return try split(Self.testImages, Self.testLabels)
    }

    /// The paths of the four files (each `.gz` or plain), checked to exist.
    public func files() throws -> [String] {
        try checkFolder()
        return try [Self.trainImages, Self.trainLabels, Self.testImages, Self.testLabels].map(file)
    }

    private func checkFolder() throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            let hint = path == Self.defaultPath ? " (install Debian's dataset-fashion-mnist, or pass --data DIR)" : ""
            throw DataError(path, code == ENOENT ? "no such data folder\(hint)"
                : openFailure(code, what: "data folder"))
        }
        guard FileKind(mode: info.st_mode) == .folder else {
            throw DataError(path, "is \(FileKind(mode: info.st_mode).phrase), not a folder: "
                            + "--data takes the folder that "
                            + "holds the four MNIST files (\(Self.trainImages)[.gz], ...)")
        }
        guard access(path, X_OK | R_OK) == 0 else {
            throw DataError(path, "cannot read the data folder: \(String(cString: strerror(errno)))")
        }
    }

    /// The file `name` or `name.gz` in the folder.
    public func file(_ name: String) throws -> String {
        let base = URL(fileURLWithPath: path).appendingPathComponent(name).path
        var found: [String] = []
        for candidate in [base + ".gz", base] {
            var info = stat()
            // whatever it is: reading it says what is wrong
            if lstat(candidate, &info) == 0 { found.append(candidate); continue }
            if errno != ENOENT { throw DataError(candidate, openFailure(errno, what: "file")) }
        }
        guard found.count < 2 else {
            // NOTE: either could be stale; picking one silently could train on other data than the user thinks.
            throw DataError(base, "both \(name).gz and \(name) are in the data folder and may differ: "
                + "remove or move one")
        }
        guard let file = found.first else {
            throw DataError(base + ".gz", "no such file (nor \(name) uncompressed) in the data folder")
        }
        return file
    }

    private func split(_ imagesName: String, _ labelsName: String) throws -> RawDataset {
        let imagesPath = try file(imagesName), labelsPath = try file(labelsName)
        let images = try IDX.read(imagesPath)
        guard images.dims.count == 3 else {
            throw DataError(imagesPath, "expected images with 3 dimensions (count, rows, cols), got \(images.dims)")
        }
        let labels = try IDX.read(labelsPath)
        guard labels.dims.count == 1 else {
            throw DataError(labelsPath, "expected labels with 1 dimension, got \(labels.dims)")
        }
        guard images.dims[0] == labels.dims[0] else {
            throw DataError(labelsPath, "\(labels.dims[0]) labels but \(imagesPath) has \(images.dims[0]) images")
        }
        guard images.dims[0] > 0 else { throw DataError(imagesPath, "holds no images (count 0)") }
        let features = images.dims[1] * images.dims[2]
        guard features > 0 else { throw DataError(imagesPath, "images have no pixels (\(images.dims))") }
        return try RawDataset(pixels: images.bytes, labels: labels.bytes.map(Float.init), features: features,
                          imageShape: [images.dims[1], images.dims[2]])
    }
}

/// Seeded shuffling into minibatches: epoch e visits every example once, in an order fixed by (seed, e).
public struct BatchSampler: Sendable {
    /// Examples.
    public let count: Int
    /// Examples per batch (the last may be smaller).
    public let batchSize: Int
    /// With the epoch, fixes each epoch’s order.
    public let seed: UInt64

    /// Batches of `batchSize` over `count` examples (a negative count is taken as 0; a batch size under 1 makes no
    /// batches: `Trainer` refuses one).
    public init(count: Int, batchSize: Int, seed: UInt64) {
        self.count = max(count, 0)
        self.batchSize = batchSize
        self.seed = seed
    }

    /// A Fisher–Yates permutation of 0..<count for `epoch`.
    public func order(epoch: Int) -> [Int] {
        var rng = SeededGenerator(seed: seed &+ 0x5EED &+ UInt64(bitPattern: Int64(epoch)) &* 0x9E37_79B9)
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        return order
    }

    /// The batches in an epoch.
    public var batchCount: Int { batchSize > 0 ? (count + batchSize - 1) / batchSize : 0 }

    /// The index ranges of the batches within an epoch's order (the last one may be short).
    public var batchRanges: [Range<Int>] {
        guard batchSize > 0 else { return [] }
        return stride(from: 0, to: count, by: batchSize).map { $0..<min($0 + batchSize, count) }
    }
}

extension Normalization {
    /// The mean and (population) standard deviation of all of `data`'s pixels, accumulated in Double.
    public static func fit(_ data: Dataset) -> Normalization {
        var sum = 0.0, sumSquares = 0.0
        for v in data.images {
            sum += Double(v)
            sumSquares += Double(v) * Double(v)
        }
        let n = Double(max(data.images.count, 1))
        let mean = sum / n
        let variance = max(sumSquares / n - mean * mean, 0)
        return Normalization(mean: Float(mean), std: Float(variance.squareRoot()))
    }

    /// `data` with every value mapped to (x − mean) / std.
    public func apply(_ data: Dataset) -> Dataset {
        var out = data
        apply(inPlace: &out)
        return out
    }

    /// The same, without a copy of the images.
    public func apply(inPlace data: inout Dataset) {
        let scale = std > 0 ? 1 / std : 1
        data.images.withUnsafeMutableBufferPointer { images in
            for i in images.indices { images[i] = (images[i] - mean) * scale }
        }
    }
}

/// A dataset resident on one device: uploaded once, so that training gathers its minibatches there.
///
/// It is immutable and `Sendable`: trainers in several tasks may read one dataset at once.
public final class DeviceDataset: Sendable {
    /// [count, features]
    public let images: Tensor
    /// [count]
    public let labels: Tensor
    /// The labels on the host, for accuracy.
    public let hostLabels: [Float]
    /// Examples.
    public let count: Int
    /// Values per example (pixels).
    public let features: Int

    /// A copy of `other` on `device` (through the host when both are OpenCL devices of different contexts).
    public init(copying other: DeviceDataset, to device: DeviceTag) throws {
        images = try other.images.to(device)
        labels = try other.labels.to(device)
        hostLabels = other.hostLabels
        count = other.count
        features = other.features
    }

    /// Uploads `data` to `device`.
    public init(_ data: Dataset, on device: DeviceTag) throws {
        images = try Tensor(data.images, shape: [data.count, data.features], on: device)
        labels = try Tensor(data.labels, shape: [data.count], on: device)
        hostLabels = data.labels
        count = data.count
        features = data.features
    }

    /// Uploads byte images normalised with `normalization`, converting a chunk at a time, so the host never holds
    /// the float copy.
    public init(_ data: RawDataset, normalization: Normalization, on device: DeviceTag) throws {
        let images = try Tensor.empty([data.count, data.features], on: device)
        self.images = images
        let table = RawDataset.table(normalization)
        var chunk = [Float](repeating: 0, count: 1 << 20)
        var start = 0
        while start < data.pixels.count {
            let n = min(chunk.count, data.pixels.count - start)
            for i in 0..<n { chunk[i] = table[Int(data.pixels[start + i])] }
            try chunk.withUnsafeBufferPointer { try images.upload(UnsafeBufferPointer(rebasing: $0[0..<n]), at: start) }
            start += n
        }
        labels = try Tensor(data.labels, shape: [data.count], on: device)
        hostLabels = data.labels
        count = data.count
        features = data.features
    }
}

/// The largest label that is a class index (a whole number in 0..<2²⁴) + 1, or 0.
func labelClassCount(_ labels: [Float]) -> Int {
    Int(labels.lazy.filter { $0 >= 0 && $0 < 16_777_216 && $0 == $0.rounded() }.max() ?? -1) + 1
}
