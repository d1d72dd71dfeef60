@_spi(CLI) import Device
import Foundation

extension RunStart {
    /// Checks, before training, that every process runs the same run: the same options, model, normalisation and
    /// starting files (`--resume`/`--init-from` and the training state, compared by content: on several hosts each
    /// reads its own copy). The first setting that differs is an error on every process, naming it and both values —
    /// rather than processes that drift apart and are caught only at an epoch's end.
    func checkSameRun(_ request: RunRequest, specs: [LayerSpec], classes: Int, normalization: Normalization,
                      devicesPerProcess: Int,
                      group: ProcessGroup) throws {
        let o = options, sizes = LayerSpec.sizes(specs)
        var settings: [(name: String, value: Double, shown: (Double) -> String)] = []
        func add(_ name: String, _ value: Double, _ shown: @escaping (Double) -> String = { "\(Float($0))" }) {
            settings.append((name, value, shown))
        }
        func whole(_ v: Double) -> String { v < 0 ? "none" : String(Int(v)) }
        func hash(_ v: Double) -> String { String(UInt64(v), radix: 16) }
        add("--epochs", Double(o.epochs), whole)
        add("--batch-size", Double(o.batchSize), whole)
        add("--lr", Double(o.lr))
        add("--lr-schedule", Double(LearningRateSchedule.allCases.firstIndex(of: o.schedule) ?? -1)) {
            LearningRateSchedule.allCases.indices.contains(Int($0))
                ? LearningRateSchedule.allCases[Int($0)].rawValue : "?"
        }
        add("--optimizer", o.optimizer == .adam ? 1 : 0) { $0 == 1 ? "adam" : "sgd" }
        add("--momentum", Double(o.momentum))
        add("--weight-decay", Double(o.weightDecay))
        add("--seed", Double(o.seed), whole)
        add("--max-steps", Double(request.maxSteps ?? -1), whole)
        add("--stop-after", Double(request.stopAfter ?? -1), whole)
        add("--activation", Double(Activation.allCases.firstIndex(of: activation) ?? -1)) {
            Activation.allCases.indices.contains(Int($0)) ? Activation.allCases[Int($0)].rawValue : "?"
        }
        add("--loss", lossName == "mse" ? 1 : 0) { $0 == 1 ? "mse" : "cross-entropy" }
        add("the class count", Double(classes), whole)
        for (i, size) in sizes.enumerated() {
            add(i == 0 ? "input size" : i == sizes.count - 1 ? "output size" : "hidden layer \(i)'s size",
                Double(size), whole)
        }
        add("the architecture (FNV-1a of its text)", Double(fnv1a(Array(LayerSpec.text(specs).utf8)) >> 11)) {
            hash($0)
        }
        add("the devices per process", Double(devicesPerProcess), whole)
        add("the input normalisation mean", Double(normalization.mean))
        add("the input normalisation std", Double(normalization.std))
        let sourceOption = request.resume != nil ? "--resume" : "--init-from"
        add("\(sourceOption) file's content (FNV-1a)", source.map { digest($0.bytes) } ?? -1) {
            $0 < 0 ? "none" : hash($0)
        }
        add("training state's content (FNV-1a)",
            try state.map { digest(try readFileBytes($0.path, what: "training state")) } ?? -1) {
            $0 < 0 ? "none" : hash($0)
        }
        // The layer count first: every process must then gather as many values.
        let counts = try group.allgather([Double(sizes.count)])
        if let p = counts.firstIndex(where: { $0 != counts[0] }) {
            throw RunRequest.Invalid("process \(p) runs a model of \(Int(counts[p][0])) layer sizes "
                + "but process 0 one of "
                + "\(Int(counts[0][0])): every process must start the same run (same options and files)")
        }
        let all = try group.allgather(settings.map(\.value))
        for (p, values) in all.enumerated() where p != 0 {
            if let i = settings.indices.first(where: { values[$0] != all[0][$0] }) {
                let s = settings[i]
                throw RunRequest.Invalid("process \(p) runs with \(s.name) \(s.shown(values[i])) but process 0 with "
                    + "\(s.shown(all[0][i])): every process must start the same run (same options and files)")
            }
        }
    }

    /// FNV-1a of `bytes`, to 53 bits (exact in a Double).
    private func digest(_ bytes: [UInt8]) -> Double { Double(fnv1a(bytes) >> 11) }

    /// Every process must train on the same data: compares each one's example counts and a checksum of its pixels and
    /// labels with process 0's.
    /// - Throws: `DataError` naming this process's folder and the process that differs.
    static func checkSameData(_ train: RawDataset, _ test: RawDataset, group: ProcessGroup, folder: String) throws {
        func digest(_ data: RawDataset) -> [Double] {
            var sum = 0.0
            for (i, p) in data.pixels.enumerated() { sum += Double(p) * Double(i % 251 + 1) }
            for (i, l) in data.labels.enumerated() { sum += Double(l) * Double(i % 13 + 1) }
            return [Double(data.count), sum]
        }
        let all = try group.allgather(digest(train) + digest(test))
        guard let other = all.firstIndex(where: { $0 != all[0] }) else { return }
        func describe(_ d: [Double]) -> String {
            "\(Int(d[0])) training and \(Int(d[2])) test examples (checksums \(Int(d[1])), \(Int(d[3])))"
        }
        throw DataError(folder, "process \(group.rank)'s data folder; process \(other) read \(describe(all[other])) "
            + "but process 0 "
            + "read \(describe(all[0])): every process must train on the same data")
    }
}
