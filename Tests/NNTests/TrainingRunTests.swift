import Foundation
import NN
import TestSupport
import XCTest

/// The run as library code: `TrainingRun` trains, evaluates and saves; a run stopped mid-epoch saves the steps taken
/// and one resumed from its files ends where a run never stopped ends, byte for byte.
final class TrainingRunTests: XCTestCase {
    struct Stop: Error {}

    func testARunStoppedMidEpochAndResumedEndsAsARunNeverStoppedOnEveryDevice() throws {
        let (trainSet, testSet) = try fashionSlice(train: 640, test: 100)
        let folder = try temporaryFolder(self)
        for device in testDevices {
            var options = TrainingOptions()
            (options.epochs, options.batchSize, options.optimizer, options.lr) = (2, 32, .adam, 0.003)
            let train = try DeviceDataset(trainSet, on: device), test = try DeviceDataset(testSet, on: device)
            func newRun(_ path: String, from model: Sequential? = nil) throws -> TrainingRun {
                let model = try model ?? MLP.make(sizes: [784, 12, 10], activation: .tanh, seed: 5, on: device)
                let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options)
                let metadata = try Checkpoint(model: model, loss: "cross-entropy", classes: 10,
                                              normalization: Normalization(mean: 0, std: 1))
                return try TrainingRun(trainer: trainer, train: train, test: test, checkpoint: metadata, save: path)
            }
            let whole = folder.appendingPathComponent("whole-\(device).safetensors").path
            var epochs: [TrainingRun.EpochReport] = []
            try newRun(whole).run(onEpoch: { epochs.append($0) })
            XCTAssertEqual(epochs.map(\.epoch), [1, 2])
            XCTAssertEqual(epochs.map(\.steps), [20, 20])

            // Stopped at the report after step 30 (step 10 of epoch 2, reports every 5 steps).
            let part = folder.appendingPathComponent("part-\(device).safetensors").path
            let stopping = try newRun(part)
            stopping.reportEvery = 5
            var seen = 0
            XCTAssertThrowsError(try stopping.run(shouldStop: { seen >= 30 },
                                                  onStep: { seen = ($0.epoch - 1) * $0.steps + $0.step })) {
                guard case TrainingError.interrupted(epoch: 2, step: 10) = $0 else {
                    return XCTFail("\(device): \($0)")
                }
            }
            XCTAssertEqual(stopping.saved, RunPosition(epoch: 1, step: 10, lossSum: stopping.saved?.lossSum ?? -1))

            let loaded = try SavedRun.load(part)
            let (_, model) = try Checkpoint.decode(loaded.bytes, path: part, on: device)
            options = loaded.state.options
            let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options)
            try loaded.state.restore(into: trainer, path: part)
            let resumed = try TrainingRun(trainer: trainer, train: train, test: test, checkpoint: loaded.checkpoint,
                                          save: part,
                                          from: loaded.state.position)
            XCTAssertEqual(resumed.stepsTaken, 30)
            try resumed.run()
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: part)),
                           try Data(contentsOf: URL(fileURLWithPath: whole)),
                           "\(device): the resumed run's checkpoint is the uninterrupted run's")

            // A callback's error ends the run with that error.
            XCTAssertThrowsError(try newRun(folder.appendingPathComponent("cb-\(device).safetensors").path)
                .run(onStep: { _ in throw Stop() })) { XCTAssertTrue($0 is Stop, "\($0)") }
        }
    }

    /// A whole run from a request, as `clnn train` builds it: the library settles the options, saves, plots, resumes
    /// a stopped run to the same bytes, and names a contradiction of the saved run before any training.
    func testARunStartedFromARequestTrainsSavesPlotsAndResumes() throws {
        let data = try temporaryFolder(self), out = try temporaryFolder(self)
        try writeMNISTFolder(data, trainCount: 50, testCount: 10)
        for device in testDevices {
            var request = RunRequest()
            (request.data, request.devices, request.hidden, request.epochs, request.batchSize)
                = (data.path, .one(device), [6], 2, 8)
            request.optimizer = .adam
            request.save = out.appendingPathComponent("whole-\(device).safetensors").path
            request.plot = out.appendingPathComponent("curves-\(device).svg").path
            var said: [String] = []
            let whole = try TrainingRun.start(request, say: { said.append($0) }, note: { _ in })
            XCTAssertEqual(whole.trainer.options.lr, 1e-3, "Adam's own default rate")
            XCTAssertTrue(said.contains { $0.contains("model 6-6-3 relu, cross-entropy, Adam lr 0.001") }, "\(said)")
            var epochs: [Int] = []
            try whole.run(onEpoch: { epochs.append($0.epoch) })
            XCTAssertEqual(epochs, [1, 2])
            XCTAssertEqual(whole.curves.epochs.map(\.0), [1, 2])
            XCTAssertTrue(try String(contentsOfFile: request.plot!, encoding: .utf8).contains("<svg"))
            XCTAssertEqual(whole.closingLines, ["saved \(request.save!)", "plotted \(request.plot!)"])

            // Stopped after epoch 1, then resumed from its files: the same checkpoint as the whole run's.
            var first = request
            (first.save, first.plot, first.stopAfter)
                = (out.appendingPathComponent("part-\(device).safetensors").path, nil, 1)
            let stopped = try TrainingRun.start(first, say: { _ in }, note: { _ in })
            try stopped.run()
            stopped.close()
            var resume = RunRequest()
            (resume.data, resume.devices, resume.resume) = (data.path, .one(device), first.save)
            let resumed = try TrainingRun.start(resume, say: { _ in }, note: { _ in })
            XCTAssertEqual(resumed.position, RunPosition(epoch: 1))
            try resumed.run()
            resumed.close()
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: first.save!)),
                           try Data(contentsOf: URL(fileURLWithPath: request.save!)), "\(device)")

            resume.lr = 0.5
            XCTAssertThrowsError(try TrainingRun.start(resume, say: { _ in }, note: { _ in })) {
                XCTAssertEqual(($0 as? RunRequest.Invalid)?.description ?? "\($0)",
                               "--lr 0.5 contradicts --resume \(first.save!), which records lr 0.001")
            }
        }
    }
}

/// A trainer given an optimiser of the caller's own, and a run checked before it trains (helper-31's probe).
final class TrainingRunCheckTests: XCTestCase {
    private func mlp() throws -> Sequential { try MLP.make(sizes: [784, 8, 10], seed: 3, on: .cpu) }
    private func metadata(_ model: Sequential, classes: Int = 10) throws -> Checkpoint {
        try Checkpoint(model: model, loss: "cross-entropy", classes: classes,
                       normalization: Normalization(mean: 0, std: 1))
    }

    /// Its rate is the schedule's base (the trainer set the options' default 0.1 on an Adam built for 1e-4) — the
    /// rate it had when the first trainer over it was made, as PyTorch's `initial_lr`, unless `options.lr` is set
    /// —, and its kind, momentum, weight decay and betas are what the training state records and checks on restore.
    func testAnOptimizerOfYourOwnIsTheRunsAndItsStateReadsBack() throws {
        let (trainSet, testSet) = try fashionSlice(train: 64, test: 16)
        let (train, test) = (try DeviceDataset(trainSet, on: .cpu), try DeviceDataset(testSet, on: .cpu))
        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.schedule) = (1, 16, .constant)
        let model = try mlp()
        let adam = try Adam(model.parameters, lr: 1e-4, beta1: 0.8, beta2: 0.99, eps: 1e-6)
        let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options, optimizer: adam)
        XCTAssertEqual(trainer.options.optimizer, .adam)
        XCTAssertEqual(trainer.options.lr, 1e-4)
        let path = try temporaryFolder(self).appendingPathComponent("own-adam.safetensors").path
        try TrainingRun(trainer: trainer, train: train, test: test, checkpoint: try metadata(model), save: path).run()
        XCTAssertEqual(adam.lr, 1e-4, "the constant schedule keeps the optimizer's own rate")

        let loaded = try SavedRun.load(path)
        XCTAssertEqual(loaded.state.options.lr, 1e-4)
        let (_, copy) = try Checkpoint.decode(loaded.bytes, path: path, on: .cpu)
        let plain = try Trainer(model: copy, loss: CrossEntropyLoss(), options: loaded.state.options)
        XCTAssertThrowsError(try loaded.state.restore(into: plain, path: path)) {
            XCTAssertEqual("\($0)", "\(path): the run was trained with Adam's beta1,beta2,eps 0.8,0.99,1e-06, not "
                + "0.9,0.999,1e-08: its moments belong to those")
        }
        let same = try Trainer(model: copy, loss: CrossEntropyLoss(), options: loaded.state.options,
                               optimizer: try Adam(copy.parameters, lr: 1e-4, beta1: 0.8, beta2: 0.99, eps: 1e-6))
        try loaded.state.restore(into: same, path: path)
        XCTAssertEqual(same.optimizer.stepCount, 4)

        // SGD's momentum is recorded as the optimizer's (it read 0, the options' default), even one just under 1.
        let other = try mlp()
        let sgd = try SGD(other.parameters, lr: 0.01, momentum: 0.99999994)
        let sgdPath = try temporaryFolder(self).appendingPathComponent("own-sgd.safetensors").path
        let sgdRun = try TrainingRun(trainer: try Trainer(model: other, loss: CrossEntropyLoss(), options: options,
                                                          optimizer: sgd),
                                     train: train, test: test, checkpoint: try metadata(other), save: sgdPath)
        sgdRun.maxSteps = 2
        try sgdRun.run()
        XCTAssertEqual(try SavedRun.load(sgdPath).state.options.momentum, 0.99999994)

        let differentMomentum = try Trainer(model: copy, loss: CrossEntropyLoss(), options: options,
                                            optimizer: try SGD(copy.parameters, lr: 0.01, momentum: 0.9))
        XCTAssertThrowsError(try SavedRun.load(sgdPath).state.restore(into: differentMomentum, path: sgdPath)) {
            XCTAssertEqual("\($0)", "\(sgdPath): the run was trained with momentum 0.99999994, not 0.9")
        }

        // A cosine schedule leaves the rate near 0: a second trainer over the optimizer starts from its first rate.
        options.schedule = .cosine
        let cosine = try Trainer(model: model, loss: CrossEntropyLoss(), options: options, optimizer: adam)
        _ = try cosine.trainEpoch(train, epoch: 1) { _ in }
        XCTAssertLessThan(adam.lr, 2e-5)
        XCTAssertEqual(try Trainer(model: model, loss: CrossEntropyLoss(), options: options, optimizer: adam)
            .options.lr, 1e-4)
        options.lr = 0.01
        XCTAssertEqual(try Trainer(model: model, loss: CrossEntropyLoss(), options: options, optimizer: adam)
            .options.lr, 0.01, "a rate set in the options is the base")
    }

    /// An optimiser over some of the model's parameters (a head to fine-tune), or all of them in another order,
    /// trains, saves its state by the model's names and restores it (saving trapped, index out of range, at the first
    /// epoch's end); one over a parameter that is not the model's is refused.
    func testAnOptimizerOverSomeOfTheModelsParametersSavesAndRestores() throws {
        let (trainSet, testSet) = try fashionSlice(train: 64, test: 16)
        let (train, test) = (try DeviceDataset(trainSet, on: .cpu), try DeviceDataset(testSet, on: .cpu))
        var options = TrainingOptions()
        (options.epochs, options.batchSize) = (1, 16)
        for pick in [{ (p: [Parameter]) in Array(p.suffix(2)) }, { (p: [Parameter]) in Array(p.reversed()) }] {
            let model = try mlp()
            let first = try model.parameters[0].value.toArray()
            let sgd = try SGD(pick(model.parameters), lr: 0.1, momentum: 0.9)
            let path = try temporaryFolder(self).appendingPathComponent("part-\(sgd.parameters.count).safetensors").path
            let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options, optimizer: sgd)
            try TrainingRun(trainer: trainer, train: train, test: test, checkpoint: try metadata(model), save: path)
                .run()
            if sgd.parameters.count == 2 {
                XCTAssertEqual(try model.parameters[0].value.toArray(), first, "not stepped")
            }
            let loaded = try SavedRun.load(path)
            let (_, copy) = try Checkpoint.decode(loaded.bytes, path: path, on: .cpu)
            let again = try SGD(pick(copy.parameters), lr: 0.1, momentum: 0.9)
            try loaded.state.restore(into: try Trainer(model: copy, loss: CrossEntropyLoss(), options: options,
                                                       optimizer: again), path: path)
            for (a, b) in zip(sgd.parameters, again.parameters) {
                XCTAssertEqual(try sgd.state(of: a)["momentum_buffer"]?.toArray(),
                               try again.state(of: b)["momentum_buffer"]?.toArray(), a.name)
            }
            XCTAssertEqual(again.parameterSteps, sgd.parameterSteps)
        }
        let model = try mlp(), stranger = try mlp()
        XCTAssertThrowsError(try Trainer(model: model, loss: CrossEntropyLoss(), options: options,
                                         optimizer: try SGD(stranger.parameters.suffix(1), lr: 0.1))) {
            XCTAssertTrue("\($0)".contains("the optimizer steps parameter '\(stranger.parameters[3].name)', which is "
                + "not one of the model's"), "\($0)")
        }
        options.epochs = TrainingOptions.maxEpochs + 1
        XCTAssertThrowsError(try Trainer(model: model, loss: CrossEntropyLoss(), options: options)) {
            XCTAssertTrue("\($0)".contains("it must have 1...1000000"), "\($0)")
        }
    }

    /// What would fail at the first save — metadata that does not read back, an optimiser a state cannot record —
    /// and a start outside the run are errors when the run is made, before an epoch is trained for nothing; a
    /// report interval past the epoch reports at its end.
    func testARunIsCheckedBeforeItTrains() throws {
        let (trainSet, testSet) = try fashionSlice(train: 64, test: 16)
        let (train, test) = (try DeviceDataset(trainSet, on: .cpu), try DeviceDataset(testSet, on: .cpu))
        var options = TrainingOptions()
        (options.epochs, options.batchSize) = (2, 8)
        let model = try mlp()
        let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options)
        let path = try temporaryFolder(self).appendingPathComponent("checked.safetensors").path
        XCTAssertThrowsError(try TrainingRun(trainer: trainer, train: train, test: test,
                                             checkpoint: try metadata(model, classes: 7), save: path)) {
            XCTAssertTrue("\($0)".contains("metadata 'clnn.classes' disagrees with the output size 10"), "\($0)")
        }
        var bad = try metadata(model)
        bad.normalization = Normalization(mean: 0, std: 0)
        XCTAssertThrowsError(try TrainingRun(trainer: trainer, train: train, test: test, checkpoint: bad, save: path))
        for position in [RunPosition(epoch: 0, step: 8), RunPosition(epoch: 3), RunPosition(epoch: 2, step: 1),
                         RunPosition(epoch: -1)] {
            XCTAssertThrowsError(try TrainingRun(trainer: trainer, train: train, test: test, checkpoint: nil,
                                                 from: position)) {
                XCTAssertTrue("\($0)".contains("it has 2 epochs of 8 steps"), "\($0)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "nothing trained, nothing written")
        let run = try TrainingRun(trainer: trainer, train: train, test: test, checkpoint: nil)
        run.reportEvery = .max
        var reports: [Int] = []
        try run.run(onStep: { reports.append($0.step) })
        XCTAssertEqual(reports, [8, 8])
    }

    /// A step that would give a model copy one example, where a batch norm needs more, is refused before the epoch's
    /// first step (the batch norm refused it at that step, often the epoch's last, and the epoch was lost); a batch
    /// norm over images of more than one pixel takes one example.
    func testAOneExampleShareForABatchNormIsRefusedBeforeTheEpoch() throws {
        let (trainSet, _) = try fashionSlice(train: 9, test: 1)
        let data = try DeviceDataset(trainSet, on: .cpu)
        for (text, replicas, batch, refused) in [
            ("linear(784,6),batchnorm1d(6),relu,linear(6,10)", [DeviceTag](), 4, true),
            ("linear(784,6),batchnorm1d(6),relu,linear(6,10)", [.cpu], 8, true),
            ("linear(784,6),batchnorm1d(6),relu,linear(6,10)", [], 3, false),
            ("image(1,28,28),conv2d(1,2,3),batchnorm2d(2),flatten,linear(1352,10)", [], 4, false)] {
            var options = TrainingOptions()
            (options.epochs, options.batchSize) = (1, batch)
            let model = try LayerSpec.modules(try LayerSpec.resolve(text, input: [1, 28, 28]), seed: 1, on: .cpu)
            let before = try model.parameters.map { try $0.value.toArray() }
            let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options, replicas: replicas)
            guard refused else {
                XCTAssertNoThrow(try trainer.trainEpoch(data, epoch: 1) { _ in }, text)
                continue
            }
            XCTAssertThrowsError(try trainer.trainEpoch(data, epoch: 1) { _ in }) {
                let copies = replicas.isEmpty ? "" : " split over 2 model copies"
                XCTAssertEqual("\($0)", "Trainer: batchnorm1d(6) needs more than one value per channel in training, "
                    + "and step \(batch == 4 ? 3 : 2) of epoch 1 gives a model copy one example (9 examples at batch size \(batch)"
                    + "\(copies)): choose a batch size that leaves each copy at least 2 (nothing was trained)")
            }
            XCTAssertEqual(try model.parameters.map { try $0.value.toArray() }, before, "nothing trained: \(text)")
        }
    }

    /// A save never replaces another run's file of the other kind: a model over a training state (that run could
    /// not be resumed), or a training state over a model saved under a state's name; a state file given to resume is
    /// named as such; a state whose Adam settings are not Adam's is refused on reading.
    func testASaveNeverReplacesAFileOfTheOtherKind() throws {
        let (trainSet, testSet) = try fashionSlice(train: 32, test: 8)
        let (train, test) = (try DeviceDataset(trainSet, on: .cpu), try DeviceDataset(testSet, on: .cpu))
        var options = TrainingOptions()
        (options.epochs, options.batchSize, options.optimizer) = (1, 16, .adam)
        let folder = try temporaryFolder(self)
        let model = try mlp()
        let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options)
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        try TrainingRun(trainer: trainer, train: train, test: test, checkpoint: try metadata(model), save: path("m"))
            .run()
        let state = try Data(contentsOf: URL(fileURLWithPath: path("m.state.safetensors")))
        let positions = RunPosition(epoch: 1)
        XCTAssertThrowsError(try SavedRun.save(trainer, checkpoint: try metadata(model), at: positions,
                                               to: path("m.state.safetensors"))) {
            XCTAssertTrue("\($0)".contains("is a training state (the file beside a checkpoint that resumes its run)"),
                          "\($0)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("m.state.safetensors"))), state)

        // A model saved under a state's name, then a run whose state would go there.
        try metadata(model).save(model, to: path("n.state.safetensors"))
        let odd = try Data(contentsOf: URL(fileURLWithPath: path("n.state.safetensors")))
        XCTAssertThrowsError(try TrainingRun(trainer: trainer, train: train, test: test,
                                             checkpoint: try metadata(model), save: path("n.safetensors"))) {
            XCTAssertTrue("\($0)".contains("its training state would replace \(path("n.state.safetensors")), which is "
                + "not a training state"), "\($0)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("n.state.safetensors"))), odd)

        var request = RunRequest()
        (request.resume, request.data) = (path("m.state.safetensors"), "/usr/share/datasets/fashion-mnist")
        XCTAssertThrowsError(try TrainingRun.start(request)) {
            XCTAssertTrue("\($0)".contains("is a training state, not a checkpoint: resume the checkpoint it was saved "
                + "beside"), "\($0)")
        }

        // 'clnn.adam' that is not three numbers Adam takes.
        var metadata = try SafeTensors.decode(Array(state), path: "m").metadata
        let tensors = try SafeTensors.decode(Array(state), path: "m").tensors
        for bad in ["0.9,0.999", "0.9,1,1e-08", "a,b,c", "0.9,0.999,1e-08,"] {
            metadata["clnn.adam"] = bad
            let bytes = try SafeTensors.encode(tensors, metadata: metadata)
            try Data(bytes).write(to: URL(fileURLWithPath: path("bad.state.safetensors")))
            XCTAssertThrowsError(try TrainingState.load(path("bad.state.safetensors"))) {
                XCTAssertTrue("\($0)".contains("metadata 'clnn.adam' is '\(bad)', not Adam's beta1,beta2,eps"), "\($0)")
            }
        }
    }
}
