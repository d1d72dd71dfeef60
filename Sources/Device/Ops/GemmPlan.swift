import Foundation

/// Register-blocked GEMM tile sizes, passed to matmul.cl as -D defines.
struct GemmConfig: Hashable, Codable, Sendable {
    var tsM = 32, tsN = 32, tsK = 16, wptM = 4, wptN = 4
    /// Tiles loaded 4 floats at a time (`-D VEC_LOADS`).
    var vectorLoads = false

    var options: String {
        "-D TS_M=\(tsM) -D TS_N=\(tsN) -D TS_K=\(tsK) -D WPT_M=\(wptM) -D WPT_N=\(wptN)" + (vectorLoads ? " -D VEC_LOADS" : "")
    }
    /// The work-group shape (N direction, M direction).
    var local: WorkSize { WorkSize(tsN / wptN, tsM / wptM) }
    var workGroupSize: Int { local.x * local.y }
    var localMemoryBytes: Int { tsK * (tsM + tsN) * MemoryLayout<Float>.size }

    func global(m: Int, n: Int) -> WorkSize {
        WorkSize((n + tsN - 1) / tsN * local.x, (m + tsM - 1) / tsM * local.y)
    }
}

/// The three GEMM forms a linear layer needs (see matmul.cl).
enum GemmVariant: String, Codable, CaseIterable, Sendable {
    /// The variant of a product with these transposes; nil for Aᵀ·Bᵀ, which only the naive kernel computes.
    init?(transA: Bool, transB: Bool) {
        switch (transA, transB) {
        case (false, false): self = .nn
        case (false, true): self = .nt
        case (true, false): self = .tn
        case (true, true): return nil
        }
    }

    /// C = A·B (forward)
    case nn
    /// C = A·Bᵀ (input gradient)
    case nt
    /// C = Aᵀ·B (weight gradient)
    case tn
}

/// One GEMM kernel of matmul.cl with its compile-time knobs.
enum GemmKernel: Hashable, Codable, Sendable, CustomStringConvertible {
    /// Local-memory tiles of C per work-group, register-blocked per work-item (GPU-style).
    case tiled(GemmConfig)
    /// RM rows × RN vectors of VW columns per work-item (NN and TN; NT on B transposed into a scratch first).
    /// `columnsFirst`: the grid runs along a row band's column blocks first (they share A's rows in cache).
    /// `kChunk` > 0: K split into chunks of (at least) that many, the partial products summed in a second pass
    /// (the full batch's weight gradient, K = 60000); see `splitK`.
    case columns(vw: Int, rm: Int, rn: Int, columnsFirst: Bool = false, kChunk: Int = 0)
    /// DM × DN dot products of VW-wide vectors per work-item (NT).
    case dots(vw: Int, dm: Int, dn: Int)

    var options: String {
        switch self {
        case .tiled(let c): return c.options
        case let .columns(vw, rm, rn, columnsFirst, kChunk):
            return "-D VW=\(vw) -D RM=\(rm) -D RN=\(rn)" + (columnsFirst ? " -D COLUMNS_FIRST" : "")
                + (kChunk > 0 ? " -D K_SPLIT" : "")
        case let .dots(vw, dm, dn): return "-D VW=\(vw) -D DM=\(dm) -D DN=\(dn)"
        }
    }

    func kernelName(_ variant: GemmVariant) -> String {
        let base = ["nn": "matmul_forward", "nt": "matmul_backward_input",
                    "tn": "matmul_backward_weight"][variant.rawValue]!
        switch self {
        case .tiled: return base
        // (A·Bᵀ by columns is A·B on B transposed first.)
        case .columns: return (variant == .nt ? "matmul_forward" : base) + "_columns"
        case .dots: return base + "_dots"
        }
    }

    /// Whether this kernel implements `variant`.
    func serves(_ variant: GemmVariant) -> Bool {
        switch self {
        case .tiled, .columns: return true
        case .dots: return variant == .nt
        }
    }

    func global(m: Int, n: Int, k: Int) -> WorkSize {
        switch self {
        case .tiled(let c): return c.global(m: m, n: n)
        case let .columns(vw, rm, rn, columnsFirst, _):
            let (rows, columns) = ((m + rm - 1) / rm, (n + rn * vw - 1) / (rn * vw))
            let split = splitK(m: m, n: n, k: k)
            let (x, y) = columnsFirst ? (columns, rows) : (rows, columns)
            return split.map { WorkSize(x, y, $0.parts) } ?? WorkSize(x, y)
        case let .dots(_, dm, dn): return WorkSize((m + dm - 1) / dm, (n + dn - 1) / dn)
        }
    }

    /// How a split-K kernel cuts this product's K: chunks of `chunk` (the kernel's `kChunk`, larger when the
    /// partial products would pass `maxPartialFloats`), `parts` of them; nil for a kernel that does not split.
    func splitK(m: Int, n: Int, k: Int) -> (chunk: Int, parts: Int)? {
        guard case let .columns(_, _, _, _, kChunk) = self, kChunk > 0 else { return nil }
        let chunk = max(kChunk, (k * m * n + Self.maxPartialFloats - 1) / Self.maxPartialFloats, 1)
        return (chunk, max(1, (k + chunk - 1) / chunk))
    }

    /// The most floats a split-K product's partial products take (64 MiB).
    static let maxPartialFloats = 1 << 24

    /// Whether this kernel is worth timing on a product of these sizes: a split-K one only when K makes at least
    /// four chunks.
    func suits(m: Int, n: Int, k: Int) -> Bool {
        guard case let .columns(_, _, _, _, kChunk) = self, kChunk > 0 else { return true }
        return k >= 4 * kChunk
    }

    /// The same kernel without splitting K (for a fusion with an epilogue, which a split kernel cannot hold).
    var unsplit: GemmKernel {
        guard case let .columns(vw, rm, rn, columnsFirst, kChunk) = self, kChunk > 0 else { return self }
        return .columns(vw: vw, rm: rm, rn: rn, columnsFirst: columnsFirst)
    }

    var local: WorkSize? {
        switch self {
        case .tiled(let c): return c.local
        // NOTE: one work-item per work-group keeps CPU drivers (POCL) from vectorising across work-items, which
        // fights the kernels' own vectors; these kernels have no local memory to share anyway.
        case .columns, .dots: return WorkSize(1, 1)
        }
    }

    /// Whether it is a local-memory tiled kernel (GPU-style).
    var isTiled: Bool {
        if case .tiled = self { return true }
        return false
    }

    /// This kernel of matmul.cl for `variant`, as a launchable source (make it once and keep it).
    func source(_ variant: GemmVariant) -> KernelSource {
        KernelSource("matmul", kernelName(variant), options: options)
    }

    var description: String {
        switch self {
        case .tiled(let c): return "tiled \(c.tsM)x\(c.tsN)x\(c.tsK) wpt \(c.wptM)x\(c.wptN)" + (c.vectorLoads ? " vec4" : "")
        case let .columns(vw, rm, rn, columnsFirst, kChunk):
            return "columns \(rm)x\(rn)xfloat\(vw)" + (columnsFirst ? " by columns" : "")
                + (kChunk > 0 ? " split K by \(kChunk)" : "")
        case let .dots(vw, dm, dn): return "dots \(dm)x\(dn)xfloat\(vw)"
        }
    }
}

/// What a GEMM launch computes beside the product (matmul.cl's fusion defines).
struct GemmFusion: Sendable, Equatable {
    /// A's stored rows come through an index list (GATHER_A).
    var gatherA = false
    /// C gets + bias[j] (BIAS_EPILOGUE).
    var bias = false
    /// With `bias`: also Y = f(C) (ACTIVATION_EPILOGUE).
    var activation: Activation?
    /// Aᵀ·B also writes B's column sums, the bias gradient (BIAS_GRADIENT).
    var biasGradient = false

    static let none = GemmFusion()

    /// This fusion's place among all of them (0 is none), so a launch finds its source by array index.
    var index: Int {
        let epilogue = bias ? 1 + (activation.map { Activation.allCases.firstIndex(of: $0)! + 1 } ?? 0) : 0
        return (gatherA ? 1 : 0) + 2 * epilogue + 2 * GemmFusion.epilogues * (biasGradient ? 1 : 0)
    }
    /// None, bias, and bias with each activation.
    static let epilogues = 2 + Activation.allCases.count
    static let count = 2 * epilogues * 2
    static let all: [GemmFusion] = (0..<count).map { i in
        let epilogue = (i / 2) % epilogues
        return GemmFusion(gatherA: i % 2 == 1, bias: epilogue > 0,
                          activation: epilogue > 1 ? Activation.allCases[epilogue - 2] : nil,
                          biasGradient: i >= count / 2)
    }

    var options: String {
        var out: [String] = []
        if gatherA { out.append("-D GATHER_A") }
        if bias { out.append("-D BIAS_EPILOGUE") }
        if let activation { out += ["-D ACTIVATION_EPILOGUE", activation.options] }
        if biasGradient { out.append("-D BIAS_GRADIENT") }
        return out.joined(separator: " ")
    }
}

/// A GEMM kernel choice with its sources made once (plain and for every fusion), ready to launch.
struct GemmLaunch: Sendable {
    let kernel: GemmKernel
    /// By `GemmFusion.index`; the first is the plain product.
    let sources: [KernelSource]
    var source: KernelSource { sources[0] }
    init(_ kernel: GemmKernel, _ variant: GemmVariant) {
        self.kernel = kernel
        sources = GemmFusion.all.map { fusion in
            let kernel = kernel.serving(fusion)
            return fusion == .none ? kernel.source(variant) : KernelSource(
                "matmul", kernel.kernelName(variant), options: kernel.options + " " + fusion.options,
                prelude: fusion.activation == nil ? nil : "activation")
        }
    }
}

extension GemmKernel {
    /// The kernel a launch in `fusion`'s form runs: this one, or without splitting K when the fusion has an
    /// epilogue (it belongs after the partial products' sum).
    func serving(_ fusion: GemmFusion) -> GemmKernel { fusion.bias ? unsplit : self }
}

extension GemmLaunch {
    /// Why this kernel, built as `built`, cannot run on `device`: a work-group or local memory past what the kernel
    /// and device allow; nil when it can.
    func unfit(_ built: CLKernel, on device: OpenCLDevice) -> String? {
        guard case .tiled(let config) = kernel else { return nil }
        if built.maxWorkGroupSize < config.workGroupSize {
            return "needs work-groups of \(config.workGroupSize), this kernel allows \(built.maxWorkGroupSize) here"
        }
        if device.info.localMemory < config.localMemoryBytes {
            return "needs \(config.localMemoryBytes) bytes of local memory, the device has \(device.info.localMemory)"
        }
        return nil
    }

    /// Why this kernel cannot run on `tag` in `fusion`'s form — it is not an OpenCL device, it does not fit
    /// (`unfit`), or, with `buildFailures`, it does not build there — or nil when it can. A check passes
    /// `buildFailures: false`: a shipped kernel that does not build is a failure to report, not a skip.
    func unusable(fusion: GemmFusion = .none, on tag: DeviceTag, buildFailures: Bool = true) -> String? {
        guard tag.isOpenCL else { return "a kernel of OpenCL devices" }
        do {
            let device = try OpenCLRuntime.shared.device(tag.index)
            return unfit(try device.kernel(sources[fusion.index]), on: device)
        } catch {
            return buildFailures ? "does not build here: " + "\(error)".prefix(300) : nil
        }
    }
}

/// The chosen kernel for each GEMM variant on one device.
struct GemmPlan: Codable, Sendable, Equatable {
    var nn: GemmKernel
    var nt: GemmKernel
    var tn: GemmKernel

    subscript(variant: GemmVariant) -> GemmKernel {
        switch variant {
        case .nn: return nn
        case .nt: return nt
        case .tn: return tn
        }
    }

    /// The untuned choice: vector kernels on CPU devices, local-memory tiles elsewhere.
    static func defaults(for info: OpenCLDeviceInfo) -> GemmPlan {
        if info.isCPU {
            return GemmPlan(nn: .columns(vw: 8, rm: 6, rn: 2), nt: .dots(vw: 8, dm: 3, dn: 4),
                            tn: .columns(vw: 8, rm: 6, rn: 2))
        }
        return GemmPlan(nn: .tiled(GemmConfig()), nt: .tiled(GemmConfig()), tn: .tiled(GemmConfig()))
    }

    /// Whether every kernel of this plan is one the tuner could have chosen for its variant (a plan read from disk
    /// must be, before its numbers reach a kernel launch).
    func isKnown(for info: OpenCLDeviceInfo) -> Bool {
        let defaults = GemmPlan.defaults(for: info)
        return GemmVariant.allCases.allSatisfy { v in
            self[v] == defaults[v] || GemmPlan.candidates(v).contains(self[v])
        }
    }

    /// What the tuner tries for `variant`.
    static func candidates(_ variant: GemmVariant) -> [GemmKernel] {
        // Local-memory tiles: the portable 32x32, and GPU-sized ones (64x64 and 128x64 tiles of C per work-group,
        // 8x8 or 8x4 results per work-item: 64 to 128 work-items, 8 to 12 KiB of local memory).
        let tiled: [GemmKernel] = [
            .tiled(GemmConfig()),
            .tiled(GemmConfig(tsM: 64, tsN: 64, tsK: 16, wptM: 8, wptN: 8)),
            .tiled(GemmConfig(tsM: 64, tsN: 64, tsK: 16, wptM: 8, wptN: 8, vectorLoads: true)),
            .tiled(GemmConfig(tsM: 64, tsN: 64, tsK: 16, wptM: 8, wptN: 4, vectorLoads: true)),
            .tiled(GemmConfig(tsM: 128, tsN: 64, tsK: 16, wptM: 8, wptN: 8, vectorLoads: true)),
        ]
        // The two column-vector shapes that win most often, with the grid along a row band's columns first (a few
        // column blocks and a large A: 60000x50x784), and that with K split (a long K: 784x50x60000 Aᵀ·B).
        let byColumns: [GemmKernel] = [(6, 2), (4, 4)].map { .columns(vw: 8, rm: $0.0, rn: $0.1, columnsFirst: true) }
        let splitK: [GemmKernel] = [(6, 2), (4, 4)].map {
            .columns(vw: 8, rm: $0.0, rn: $0.1, columnsFirst: true, kChunk: 256)
        }
        switch variant {
        case .nn, .tn:
            return tiled + [(8, 6, 2), (8, 4, 2), (8, 8, 1), (8, 4, 4), (16, 4, 1), (4, 8, 2)].map {
                GemmKernel.columns(vw: $0.0, rm: $0.1, rn: $0.2)
            } + byColumns + splitK
        case .nt:
            // Dot products, and column vectors on B transposed first (a short K: the input gradient's 50).
            return tiled + [(8, 3, 4), (8, 4, 4), (8, 2, 4), (16, 2, 4), (4, 4, 4)].map {
                GemmKernel.dots(vw: $0.0, dm: $0.1, dn: $0.2)
            } + [.columns(vw: 8, rm: 6, rn: 2)] + byColumns
        }
    }
}

