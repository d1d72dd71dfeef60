import Foundation

// What a `Trainer` checks before an epoch's first step, so that nothing is trained for an epoch that cannot finish.

extension Trainer {
    /// The epoch's sampler, after checking that `epoch` and `firstStep` lie in the run and the data suits the model.
    func epochSampler(_ data: DeviceDataset, epoch: Int, firstStep: Int, maxSteps: Int?) throws
        -> BatchSampler {
        guard (1...max(options.epochs, 1)).contains(epoch) else {
            throw DeviceError.invalidArgument(op: "Trainer.trainEpoch", "epoch counts from 1 to options.epochs "
                + "(\(options.epochs)), got \(epoch): the learning-rate schedule is placed by it")
        }
        try requireDevice(data)
        guard data.count > 0 else {
            throw DeviceError.invalidArgument(op: "Trainer.trainEpoch", "the training data holds no examples")
        }
        if let maxSteps, maxSteps < 0 {
            throw DeviceError.invalidArgument(op: "Trainer.trainEpoch", "maxSteps must be at least 0, got \(maxSteps)")
        }
        try Evaluator.validateLabels(data.hostLabels, classes: classes, source: "training data")
        let sampler = BatchSampler(count: data.count, batchSize: options.batchSize, seed: options.seed)
        guard (0...sampler.batchCount).contains(firstStep) else {
            throw DeviceError.invalidArgument(op: "Trainer.trainEpoch", "firstStep \(firstStep) is outside the epoch's "
                + "\(sampler.batchCount) steps")
        }
        return sampler
    }

    /// The model's first batch norm that sees one value per channel per example (over [N, C], or 1×1 images), by its
    /// architecture text: a share of one example cannot train it. Nil when there is none, or the model's layers
    /// are not all CLNN's (then the batch norm's own error stands).
    private var singleValueBatchNorm: String? {
        guard let specs = model.layerSpecs, var shape = LayerSpec.inputShape(specs),
              let shapes = try? LayerSpec.shapes(specs, endsFlat: false) else { return nil }
        for (spec, next) in zip(specs, shapes) {
            if case .batchNorm = spec, shape.dropFirst().reduce(1, *) == 1 { return spec.description }
            shape = next
        }
        return nil
    }

    /// Throws before the epoch's first step when one of `ranges` gives a model copy exactly one example and a batch
    /// norm would need more (`singleValueBatchNorm`): the batch norm would refuse it at that step, the steps before
    /// it lost — most often the last batch of an epoch whose size leaves one over.
    func requireBatchStatistics(_ ranges: [Range<Int>], epoch: Int, firstStep: Int, examples: Int) throws {
        guard let norm = singleValueBatchNorm,
              // (Every copy's share, of every process: each process refuses alike.)
              let taken = ranges.firstIndex(where: { NN.shares(of: $0, parts: modelCopies).contains { $0.count == 1 } })
        else { return }
        let copies = modelCopies > 1 ? " split over \(modelCopies) model copies" : ""
        throw DeviceError.invalidArgument(op: "Trainer", "\(norm) needs more than one value per channel in "
            + "training, and step \(firstStep + taken + 1) of epoch \(epoch) gives a model copy one example "
            + "(\(examples) examples at batch size \(options.batchSize)\(copies)): choose a batch size that leaves "
            + "each copy at least 2 (nothing was trained)")
    }

    /// Throws unless `data` and the model are on the trainer's device.
    func requireDevice(_ data: DeviceDataset) throws {
        guard data.images.device == device else {
            throw DeviceError.deviceMismatch(op: "Trainer", device, data.images.device)
        }
        // The model moved since the trainer was made for it (model.to(_:)): name that, not an op's operands.
        _ = try Evaluator.device(of: model, expected: device, op: "Trainer (made for \(device))")
    }
}
