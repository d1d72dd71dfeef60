import Foundation

extension Module {
    /// Saves the parameters as a plain state dict (safetensors, no clnn metadata), under `namedParameters`' names,
    /// atomically. A 2-D parameter is stored transposed, as PyTorch keeps a Linear weight ([out, in]; CLNN keeps
    /// [in, out]); `loadStateDict` transposes it back. Any module saves, custom ones included: what a checkpoint
    /// cannot describe (`layerSpecs` nil) is still its parameters by name and shape.
    /// - Throws: `DataError` when a parameter holds NaN or an infinity (nothing is written), or the write fails.
    public func saveStateDict(to path: String, metadata: [String: String] = [:]) throws {
        var tensors: [String: SafeTensors.Entry] = [:]
        for (name, p) in namedParameters {
            tensors[name] = SafeTensors.Entry(pyTorchLayoutOf: try p.value.toArray(), shape: p.value.shape)
        }
        for (name, value) in namedBuffers {
            tensors[name] = SafeTensors.Entry(bufferValues: try value.toArray(), shape: value.shape, name: name)
        }
        if let bad = SafeTensors.firstNonFinite(tensors) {
            throw DataError(path, "not written: parameter '\(bad.name)' holds \(bad.value) at \(bad.position)")
        }
        try AtomicFile.write(try SafeTensors.encode(tensors, metadata: metadata), to: path)
    }

    /// Loads a state dict written by `saveStateDict` (or PyTorch's `save_file(model.state_dict())` of the same
    /// architecture) into the parameters: every name present with its shape, nothing extra, every value finite —
    /// all checked before any parameter changes.
    /// - Throws: `DataError` naming the file and the first tensor missing, extra, of another shape or not finite.
    public func loadStateDict(from path: String) throws {
        let (file, _) = try SafeTensors.decode(try readFileBytes(path, what: "state dict", holding: 3), path: path,
                                               copies: 2)
        try SafeTensors.requireFinite(file, path: path, what: "a state dict")
        let named = namedParameters, buffers = namedBuffers
        let names = named.map(\.name) + buffers.map(\.name)
        let tensors = try SafeTensors.Entry.fillingMissingCounters(file, buffers: buffers)
        if let extra = Set(tensors.keys).subtracting(names).sorted().first {
            throw DataError(path, "unexpected tensor '\(extra.prefix(80))' "
                + "(the module's are \(names.joined(separator: ", ")))")
        }
        for (name, p) in named {
            guard let entry = tensors[name] else { throw DataError(path, "missing tensor '\(name)'") }
            let expected = SafeTensors.Entry.pyTorchShape(p.value.shape)
            guard entry.shape == expected else {
                throw DataError(path, "tensor '\(name)' has shape \(entry.shape) but the module's needs \(expected)")
            }
        }
        for (name, value) in buffers {
            guard let entry = tensors[name] else { throw DataError(path, "missing tensor '\(name)'") }
            guard entry.shape == value.shape else {
                throw DataError(path, "tensor '\(name)' has shape \(entry.shape) but the module's needs \(value.shape)")
            }
        }
        for (name, p) in named { try p.load(try Tensor(tensors[name]!.clnnLayout, shape: p.value.shape)) }
        try loadBuffers(Dictionary(uniqueKeysWithValues: try buffers.map { name, value in
            (name, try Tensor(tensors[name]!.values, shape: value.shape, on: value.device))
        }))
    }
}
