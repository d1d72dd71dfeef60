import ArgumentParser
import Device
import Foundation
@_spi(CLI) import NN

extension Bench {
    struct Scale: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Data-parallel scaling: epoch time and the gradient exchange per step for 1 and 2 replicas "
                + "(and, under mpirun, per process).",
            discussion: "The exchange column is host time spent in the exchange per step: on cpu the copies and sums "
                + "themselves; between OpenCL devices the copies are queued without waiting (their device time shows "
                + "in the epoch, not here); under mpirun (e.g. mpirun -np 2 --mca btl tcp,self clnn bench scale "
                + "--layouts cpu) it includes the MPI_Allreduce and the read-back before it. Every layout runs on "
                + "every process; process 0 prints.")

        @Option(help: "A folder in the MNIST layout.")
        var data: String = MNISTFolder.defaultPath

        @Option(help: ArgumentHelp(
            "Device lists to time, separated by ';' (default: cpu; cpu,cpu; and with OpenCL opencl:0; "
            + "opencl:0,opencl:1 when there are two devices)."))
        var layouts: String?

        @Option(help: "Global minibatch size.")
        var batchSize: Int = 64

        func validate() throws {
            guard (1...(1 << 16)).contains(batchSize) else {
                throw ValidationError("--batch-size must be in 1...65536, got \(batchSize)")
            }
            if let layouts {
                let items = layouts.split(separator: ";", omittingEmptySubsequences: false)
                if let empty = items.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
                    throw ValidationError("--layouts '\(layouts)': layout \(empty + 1) is empty; "
                        + "give device lists such as "
                        + "'cpu;cpu,cpu;opencl:0'")
                }
                for item in items {
                    let devices = item.split(separator: ",", omittingEmptySubsequences: false)
                    if devices.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
                        throw ValidationError("--layouts: layout '\(item)' has an empty device (a stray comma?)")
                    }
                }
            }
        }

        func run() throws {
            let group = try ProcessGroup.join()
            if let group, group.rank != 0 { silenceStandardOutput() }
            var lists = [[DeviceTag.cpu], [.cpu, .cpu]]
            let openCL = DeviceTag.available.filter(\.isOpenCL)
            if let first = openCL.first {
                lists += [[first]] + (openCL.count >= 2 ? [Array(openCL.prefix(2))] : [[first, first]])
            }
            if let layouts {
                lists = try layouts.split(separator: ";").map { item in
                    try item.split(separator: ",").map {
                        try DeviceTag(parsing: $0.trimmingCharacters(in: .whitespaces))
                    }
                }
            }
            let (rawTrain, _) = try MNISTFolder(data).load()
            let train = Normalization.fit(rawTrain).apply(rawTrain)
            let processes = group?.size ?? 1
            print("784-50-10, cross-entropy, SGD lr 0.1, global batch \(batchSize), one epoch per layout, "
                  + "\(processes) process(es)"
                  + (group == nil ? "" : " (mpirun)"))
            print("devices per process        epoch s   steps   exchange ms/step   exchange share")
            for devices in lists {
                for d in devices { try d.warmUp() }
                var options = TrainingOptions()
                (options.schedule, options.batchSize, options.epochs) = (.constant, batchSize, 1)
                let model = try MLP.make(sizes: [train.features, 50, 10], seed: 1, on: devices[0])
                let trainer = try Trainer(model: model, loss: CrossEntropyLoss(), options: options,
                                          replicas: Array(devices.dropFirst()), processGroup: group)
                let data = try DeviceDataset(train, on: devices[0])
                try trainer.prepare(data)
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try trainer.trainEpoch(data, epoch: 1, reportEvery: 100)
                for d in devices { try d.synchronize() }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                let perStep = trainer.exchangeSteps > 0
                    ? trainer.exchangeSeconds / Double(trainer.exchangeSteps) * 1e3 : 0
                print(devices.map(\.description).joined(separator: ",")
                          .padding(toLength: 24, withPad: " ", startingAt: 0)
                      + String(format: "%9.3f %7d %18.3f %15.1f%%", seconds,
                               BatchSampler(count: train.count, batchSize: batchSize, seed: 42).batchCount,
                               perStep, trainer.exchangeSeconds / seconds * 100))
            }
        }
    }
}
