/// The number of classes a run trains for, decided from the labels when the data loads (not during training).
///
/// - Without an explicit count it is the largest training label + 1.
/// - A label outside 0..<classes, in either split, is an error naming its file, example and value.
/// - A class with no training example is a warning: the model can never learn to predict it. That includes a class
///   the test set holds but the training set lacks, when the explicit count covers it.
public struct ClassPlan: Equatable, Sendable {
    /// The class count of the run.
    public let classes: Int
    /// Human-readable warnings (empty when every class has training examples).
    public let warnings: [String]

    /// Decides the class count and checks every label of both splits against it.
    /// - Parameters:
    ///   - train: the training labels.
    ///   - test: the test labels.
    ///   - explicit: the class count stated by the user (`--classes`) or a checkpoint, or nil to take it from the
    ///     training labels.
    ///   - explicitSource: where `explicit` comes from, for messages (`--classes 10`, `the class count of
    ///     m.safetensors (10)`).
    ///   - trainSource: the training label file, for messages.
    ///   - testSource: the test label file, for messages.
    public init(train: [Float], test: [Float], explicit: Int?, explicitSource: String? = nil, trainSource: String,
                testSource: String) throws {
        let observed = labelClassCount(train)
        let classes = explicit ?? observed
        guard classes > 0 else { throw DataError(trainSource, "holds no labels") }
        for (labels, source) in [(train, trainSource), (test, testSource)] {
            guard let bad = labels.firstIndex(where: { !($0 >= 0 && $0 < Float(classes)) || $0 != $0.rounded() }) else {
                continue
            }
            let why = explicit != nil
                ? "\(explicitSource ?? "--classes \(classes)") allows labels 0...\(classes - 1)"
                : "the training labels go up to \(observed - 1), so the model has \(classes) classes; "
                    + "pass --classes N if the training set simply lacks some classes"
            throw DataError(source, "label \(labelText(labels[bad])) of example \(bad) is out of range: \(why)")
        }
        var seen = [Bool](repeating: false, count: classes)
        for label in train { seen[Int(label)] = true }
        let missing = seen.indices.filter { !seen[$0] }
        var warnings: [String] = []
        if !missing.isEmpty {
            let list = missing.prefix(10).map(String.init).joined(separator: ", ") + (missing.count > 10 ? ", ..." : "")
            let inTest = Set(test.map(Int.init)).intersection(missing).count
            // Without --classes the count comes from the largest label: name it, and where it is (one stray label
            // makes a model of many empty classes).
            let largest = explicit == nil ? train.firstIndex(of: Float(observed - 1)).map {
                "; the largest training label is \(observed - 1) (example \($0)), which sets the class count "
                    + "(pass --classes N if it is wrong)"
            } ?? "" : ""
            warnings.append("\(trainSource): \(missing.count) of \(classes) classes have no training example "
                            + "(\(list)); "
                            + "the model cannot learn them"
                            + (inTest > 0 ? " (\(inTest) of them occur in the test set)" : "") + largest)
        }
        self.classes = classes
        self.warnings = warnings
    }
}

extension ClassPlan {
    /// Checks that every label is a class in 0..<classes.
    /// - Throws: `DataError` naming `source`, the example and the label.
    public static func check(_ labels: [Float], classes: Int, source: String) throws {
        try Evaluator.validateLabels(labels, classes: classes, source: source)
    }
}

/// A label as written in its file: a whole number without a fraction (`9`, not `9.0`).
func labelText(_ label: Float) -> String {
    label == label.rounded() && abs(label) < 1e9 ? String(Int(label)) : "\(label)"
}
