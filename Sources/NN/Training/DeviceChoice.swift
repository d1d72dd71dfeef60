import Foundation

/// Picks the device that trains a model fastest, as `--device auto` does.
public enum DeviceChoice {
    /// Why a device was picked, for a one-line report.
    public struct Decision: Sendable {
        /// The device chosen.
        public let device: DeviceTag
        /// Seconds per training step measured on each candidate (empty when no measurement was needed).
        public let stepSeconds: [(device: DeviceTag, seconds: Double)]
        /// Why, in words (with the timings when it measured).
        public let reason: String
    }

    /// An OpenCL GPU or accelerator when there is one (the first); else, when the only OpenCL devices are CPU-type
    /// (POCL on the host's own cores), whichever of `cpu` and the first of them runs `steps` training steps of an MLP
    /// of `sizes` on batches of `batchSize` faster; else `cpu`.
    public static func fastest(sizes: [Int], batchSize: Int, steps: Int = 20) throws -> Decision {
        try fastest(specs: LayerSpec.mlp(sizes: sizes, activation: .relu), batchSize: batchSize, steps: steps)
    }

    /// The same for a model of `specs` (an MLP as `MLP.make` builds it, any other as `LayerSpec.modules`; a model
    /// that is not an MLP takes a quarter of the steps, at least 3).
    public static func fastest(specs: [LayerSpec], batchSize: Int, steps: Int = 20) throws -> Decision {
        let steps = LayerSpec.isMLP(specs) ? steps : max(steps / 4, 3)
        let devices = OpenCLRuntime.shared.devices
        if let gpu = devices.first(where: { !$0.isCPU }) {
            return Decision(device: .opencl(gpu.index), stepSeconds: [],
                            reason: "an OpenCL \(gpu.name) that is not a CPU")
        }
        guard let pocl = devices.first else {
            return Decision(device: .cpu, stepSeconds: [],
                            reason: "no OpenCL device (\(OpenCLRuntime.shared.discoveryNote ?? "none found"))")
        }
        var timings: [(device: DeviceTag, seconds: Double)] = []
        for device in [DeviceTag.cpu, .opencl(pocl.index)] {
            timings.append((device, try secondsPerStep(specs: specs, batchSize: batchSize, steps: steps, on: device)))
        }
        let best = timings.min { $0.seconds < $1.seconds }!
        let measured = timings.map { String(format: "%@ %.2f ms", $0.device.description, $0.seconds * 1e3) }
        return Decision(device: best.device, stepSeconds: timings,
                        reason: "only CPU-type OpenCL devices; a training step of this model took "
                            + "\(measured.joined(separator: ", "))")
    }

    /// Seconds per training step (forward, loss, backward, SGD) of a model of `specs` on `device`, after a warm-up.
    static func secondsPerStep(specs: [LayerSpec], batchSize: Int, steps: Int, on device: DeviceTag) throws -> Double {
        try device.warmUp()
        let model = LayerSpec.isMLP(specs) ? try LayerSpec.modules(specs, seed: 1, on: device)
            : try LayerSpec.modules(specs, initializer: .pytorchDefault, seed: 1, on: device)
        let sizes = [LayerSpec.inputShape(specs)?.reduce(1, *) ?? 1, LayerSpec.sizes(specs).last ?? 1]
        let sgd = try SGD(model.parameters, lr: 1e-3)
        // Batches picked from a resident set through an order, as training reads them.
        let examples = 4 * batchSize
        let order = try Tensor((0..<examples).map { Float($0 * 7 % examples) }, shape: [examples], on: device)
        let x = try Rows(try Tensor.randn([examples, sizes[0]], seed: 2, on: device), order: order, offset: batchSize,
                         count: batchSize, checkingIndices: false)
        let labels = try Tensor((0..<examples).map { Float($0 % max(sizes.last!, 1)) }, shape: [examples], on: device)
        let y = try Rows(labels, order: order, offset: batchSize, count: batchSize, checkingIndices: false)
        let grad = try Tensor.empty([batchSize, sizes.last!], on: device), loss = try Tensor.empty([1], on: device)
        let lossFunction: any Loss = sizes.last! == 1 ? MSELoss() : CrossEntropyLoss()
        func step() throws {
            let pred = try ModuleTape.callerRunsBackward { try model.forward(x) }  // (as the trainer's step)
            try lossFunction.mean(pred, y, grad: grad, into: loss, at: 0)
            try model.zeroGrad()
            _ = try model.backward(grad, needsInputGradient: false)
            try sgd.step()
        }
        for _ in 0..<3 { try step() }
        try device.synchronize()
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { try step() }
        try device.synchronize()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(max(steps, 1))
    }
}
