import Foundation

/// Picks the fastest GEMM kernel for each variant on a device, on the device's first GEMM, and caches the choice on
/// disk keyed by device name, driver version and matmul.cl's source hash, so later processes reuse it at once.
/// Two plans are tuned: one on batch-sized products (a training step's) and one on large ones (full-batch passes,
/// 1024³): the winners differ (on POCL/AVX-512 the TN winner at batch size runs 70 GFLOP/s there but loses at
/// 784×64×1024). A large product through `Tensor.matmul` is also tuned for its own shape class on its first
/// product (`classKey`, `tuneClass`), and the class's kernel cached in the same entry; the fused layer products use
/// the two plans.
///
/// `CLNN_GEMM_TUNE=0` skips tuning and uses `GemmPlan.defaults` (e.g. under oclgrind, where timing is meaningless).
/// `CLNN_CACHE_DIR` moves the cache (default `$XDG_CACHE_HOME/clnn`, else `~/.cache/clnn`).
enum GemmTuner {
    struct CacheEntry: Codable {
        var device: String
        var driver: String
        var sourceHash: String
        /// The plan for large products.
        var plan: GemmPlan
        /// The plan for products of at most `smallProduct` multiply-adds.
        var small: GemmPlan
        /// GFLOP/s of every candidate tried, per variant and size ("nn", "nn-small", ...) and per shape class, for
        /// the curious.
        var measurements: [String: [String: Double]]
        /// The kernel tuned for each shape class of large products (`classKey`), on the first product of the class.
        var classes: [String: GemmKernel]?
    }

    /// What a device's products use: the large and the small plan, and the cache entry (with the kernels tuned per
    /// shape class) and file where new classes are recorded (nil: tuning is off).
    struct Tuned {
        var large: GemmPlan
        var small: GemmPlan
        var entry: CacheEntry?
        var file: URL?
    }

    /// Seconds of tuning per variant after which the best candidate so far is kept.
    static let variantBudget = 6.0

    /// The representative shape each variant is timed on (m, n, k) for large products: about 0.1 GFLOP each, so
    /// that tuning (mostly program builds) takes seconds, once per device and driver.
    static let shapes: [GemmVariant: (Int, Int, Int)] = [.nn: (384, 384, 384), .nt: (2048, 784, 32),
                                                         .tn: (784, 64, 1024)]
    /// The same for batch-sized products: the default model's layer at batch 64 (forward, input and weight gradient).
    static let smallShapes: [GemmVariant: (Int, Int, Int)] = [.nn: (64, 50, 784), .nt: (64, 784, 50),
                                                              .tn: (784, 50, 64)]
    /// Products of at most this many multiply-adds use the small plan.
    static let smallProduct = 1 << 23

    /// The plans of `device`: read from the cache, else tuned now (and cached).
    static func plan(for device: OpenCLDevice) throws -> Tuned {
        let environment = ProcessInfo.processInfo.environment
        if environment["CLNN_GEMM_TUNE"] == "0" {
            return Tuned(large: .defaults(for: device.info), small: .defaults(for: device.info))
        }
        let source = try KernelLibrary.source("matmul")
        let hash = fnv1a(source)
        let file = clnnCacheFolder(environment).appendingPathComponent(
            "gemm2-\(fnv1a("\(device.info.name)|\(device.info.driverVersion)|\(device.info.version)|\(hash)")).json")
        // The classes of a cache tuned under load, tuned under that load too: tuned again when met.
        var stale: Set<String> = []
        if let bytes = readRegularFile(file.path), let entry = cachedEntry(bytes, for: device.info, sourceHash: hash) {
            guard let why = tunedUnderLoad(bytes, entry.plan, on: device) else {
                return Tuned(large: entry.plan, small: entry.small, entry: entry, file: file)
            }
            stale = Set((entry.classes ?? [:]).keys)
            CLNNLog.logger.notice("the GEMM plan cached for \(device.info.name) was tuned under load (\(why)): tuning again")
        }
        CLNNLog.logger.notice("tuning GEMM kernels for \(device.info.name) (once; to be cached in \(file.path))")
        var measurements: [String: [String: Double]] = [:]
        let large = tune(device, shapes: shapes, label: "", into: &measurements)
        let small = tune(device, shapes: smallShapes, label: "-small", into: &measurements)
        let fresh = CacheEntry(device: device.info.name, driver: device.info.driverVersion, sourceHash: hash,
                               plan: large, small: small, measurements: measurements)
        // The shape classes another process (or device of this name) tuned meanwhile are kept with the new plans.
        let entry = updateCache(file, for: device.info, sourceHash: hash) { onDisk in
            guard let classes = onDisk?.classes?.filter({ !stale.contains($0.key) }), !classes.isEmpty else {
                return fresh
            }
            var merged = fresh
            merged.classes = classes
            for key in classes.keys { merged.measurements[key] = onDisk?.measurements[key] }
            return merged
        }
        return Tuned(large: large, small: small, entry: entry, file: file)
    }

    /// The shape class of a product: its variant, each size rounded to the nearest half power of two (the sizes
    /// of one class are within a factor √2 of each other, and share a kernel), and the fusion it runs in (a fused
    /// layer's product is timed as it runs: "tn 19-11-32 f3").
    static func classKey(_ variant: GemmVariant, m: Int, n: Int, k: Int, fusion: GemmFusion = .none) -> String {
        func bucket(_ x: Int) -> Int { Int((2 * log2(Double(max(x, 1)))).rounded()) }
        return "\(variant.rawValue) \(bucket(m))-\(bucket(n))-\(bucket(k))" + (fusion == .none ? "" : " f\(fusion.index)")
    }

    /// Seconds a shape class's tuning may take (after which the best candidate so far wins).
    static let classBudget = 4.0

    /// The fastest candidate of `variant` on this very product in its fusion's form — A, B and the fusion's
    /// inputs as given, what it writes (C, Y, db) into scratch buffers —, and each candidate's GFLOP/s; on a
    /// CPU-type device the vector kernels only (as `tune`). Nil when none ran.
    ///
    /// A class's products are large (up to seconds each on a CPU driver) and the budget is seconds, so: `first`
    /// (the size plan's kernel) and the forms made for shapes that kernel serves badly (split K, grids by columns,
    /// A·Bᵀ by columns) are timed before the rest; each candidate is built and run once on a sliver of the product
    /// (POCL compiles its work-group function on the first launch), then timed on the whole product once, and
    /// twice more (the best counts) when that took under 50 ms.
    static func tuneClass(_ device: OpenCLDevice, _ variant: GemmVariant, m: Int, n: Int, k: Int, a: CLBuffer,
                          b: CLBuffer, fusion: GemmFusion = .none, extra: GemmFusionOperands = GemmFusionOperands(),
                          first: GemmKernel? = nil) -> (GemmKernel, [String: Double])? {
        var best: (GemmKernel, Double)?
        var measured: [String: Double] = [:]
        var extra = extra
        do {
            if fusion.activation != nil { extra.y = try device.makeBuffer(count: m * n) }
            if fusion.biasGradient { extra.db = try device.makeBuffer(count: n) }
        } catch { return nil }
        guard let c = try? device.makeBuffer(count: m * n) else { return nil }
        func rank(_ kernel: GemmKernel) -> Int {
            if kernel == first { return 0 }
            guard case let .columns(_, _, _, columnsFirst, kChunk) = kernel else { return 3 }
            return kChunk > 0 ? 1 : columnsFirst || variant == .nt ? 2 : 3
        }
        let candidates = GemmPlan.candidates(variant).enumerated()
            .filter { !(device.info.isCPU && $0.element.isTiled) && $0.element.suits(m: m, n: n, k: k) }
            .sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }.map(\.element)
        let start = DispatchTime.now().uptimeNanoseconds
        // NOTE: a second pass over the candidates timed in the first, while the budget lasts, each keeping its
        // better figure: one sample of a 78 ms product read 19.5 GFLOP/s for a kernel that runs at 60 (the machine
        // busy for that moment), and a slower kernel took the class (the full batch's backward 68 → 85 ms on POCL).
        let timed = candidates + candidates
        for (index, candidate) in timed.enumerated() {
            if best != nil && Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 > classBudget { break }
            if index >= candidates.count && measured[candidate.description] == nil { continue }
            let launch = GemmLaunch(candidate, variant)
            guard launch.unusable(fusion: fusion, on: .opencl(device.info.index)) == nil else { continue }
            // (A sliver reads a prefix of each operand: every index stays inside the whole product's.)
            func run(_ m: Int, _ n: Int, _ k: Int) throws -> Double {
                let begin = DispatchTime.now().uptimeNanoseconds
                try launchMatmul(device, a, b, c, m: m, n: n, k: k, transA: variant == .tn, transB: variant == .nt,
                                 kernel: launch, beta: 0, fusion: fusion, extra: extra)
                try device.finish()
                return Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
            }
            guard let seconds = try? {
                _ = try run(min(m, 16), min(n, 16), min(k, 16))
                let once = try run(m, n, k)
                return once < 0.05 ? min(once, try run(m, n, k), try run(m, n, k)) : once
            }() else { continue }
            let gflops = max(2 * Double(m) * Double(n) * Double(k) / seconds / 1e9, measured[candidate.description] ?? 0)
            measured[candidate.description] = gflops
            if gflops > best?.1 ?? 0 { best = (candidate, gflops) }
        }
        return best.map { ($0.0, measured) }
    }

    /// The fastest candidate of each variant on `shapes`, within the time budget.
    private static func tune(_ device: OpenCLDevice, shapes: [GemmVariant: (Int, Int, Int)], label: String,
                             into measurements: inout [String: [String: Double]]) -> GemmPlan {
        var plan = GemmPlan.defaults(for: device.info)
        for variant in GemmVariant.allCases {
            var best: (GemmKernel, Double)?
            let start = DispatchTime.now().uptimeNanoseconds
            // NOTE: a CPU-type device (POCL, llvmpipe) times only the vector kernels: its "local memory" is ordinary
            // memory, the tiles' barriers cost, and no tiled kernel ever won there (Zen 3, Zen 5, Skylake-AVX512);
            // building them took most of the tuning on llvmpipe. `clnn check` still checks them there.
            let (m, n, k) = shapes[variant]!
            for candidate in GemmPlan.candidates(variant)
            where !(device.info.isCPU && candidate.isTiled) && candidate.suits(m: m, n: n, k: k) {
                // NOTE: on a slow device (a CPU emulation, a debug driver) tuning must not take minutes: after
                // `variantBudget` seconds the best kernel so far wins.
                if best != nil && Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 > variantBudget { break }
                // NOTE: a candidate this device cannot build or hold is skipped with a note (launchMatmul would
                // run the naive kernel in its place, and the tuner would time that); one that fails to run too.
                if let why = GemmLaunch(candidate, variant).unusable(on: .opencl(device.info.index)) {
                    CLNNLog.logger.notice("GEMM tuning on \(device.info.name): \(variant.rawValue) \(candidate) skipped: \(why)")
                    continue
                }
                guard let gflops = try? measure(candidate, variant, shape: shapes[variant]!, on: device) else {
                    CLNNLog.logger.notice("GEMM tuning on \(device.info.name): \(variant.rawValue) \(candidate) skipped: its launch failed")
                    continue
                }
                measurements[variant.rawValue + label, default: [:]][candidate.description] = gflops
                if gflops > best?.1 ?? 0 { best = (candidate, gflops) }
            }
            if let (kernel, _) = best {
                switch variant {
                case .nn: plan.nn = kernel
                case .nt: plan.nt = kernel
                case .tn: plan.tn = kernel
                }
            }
        }
        return plan
    }

    /// The plan stored in a cache file's bytes, when the entry is for this device, driver and matmul.cl, and
    /// names only kernel configurations the tuner could have chosen.
    /// NOTE: anything else (rm: 0, wptM: 3, ... from a damaged or edited file) is discarded and the device tuned
    /// again: such values would divide by zero or compute garbage.
    /// A shape class whose key or kernel is not one the tuner makes is dropped (tuned again when it is met).
    static func cachedPlan(_ bytes: [UInt8], for info: OpenCLDeviceInfo,
                           sourceHash: String) -> (large: GemmPlan, small: GemmPlan, classes: [String: GemmKernel])? {
        guard let entry = try? JSONDecoder().decode(CacheEntry.self, from: Data(bytes)),
              entry.sourceHash == sourceHash, entry.device == info.name, entry.driver == info.driverVersion,
              entry.plan.isKnown(for: info), entry.small.isKnown(for: info) else { return nil }
        let classes = (entry.classes ?? [:]).filter { key, kernel in
            guard let name = key.split(separator: " ").first, let variant = GemmVariant(rawValue: String(name))
            else { return false }
            return GemmPlan.candidates(variant).contains(kernel)
        }
        return (entry.plan, entry.small, classes)
    }

    /// Why the cached plan looks tuned while other work held the device — its NN kernel, run once now on the tuning
    /// shape, more than `staleFactor` times faster than the cache recorded —, or nil. (A machine busy while tuning
    /// makes every candidate slow and the winner a matter of chance, and the cache would keep that plan until
    /// matmul.cl changes; noise now can only slow this check, so a run much faster than recorded is a stale
    /// record, never a false alarm.) Costs one build that the first product needs anyway and two products of ~1 ms.
    static func tunedUnderLoad(_ bytes: [UInt8], _ plan: GemmPlan, on device: OpenCLDevice) -> String? {
        guard let entry = try? JSONDecoder().decode(CacheEntry.self, from: Data(bytes)),
              let recorded = entry.measurements[GemmVariant.nn.rawValue]?[plan.nn.description], recorded > 0,
              let now = try? measure(plan.nn, .nn, shape: shapes[.nn]!, on: device, quick: true),
              now > staleFactor * recorded else { return nil }
        return String(format: "%@ %@ ran at %.1f GFLOP/s then, %.1f now", GemmVariant.nn.rawValue,
                      plan.nn.description, recorded, now)
    }

    /// How much faster than recorded the cached plan's kernel must run now for the record to count as stale.
    static let staleFactor = 2.5

    /// GFLOP/s of `kernel` for `variant` on its tuning shape: the best of 3 samples after a warm-up, each sample
    /// repeating the product for at least 20 ms (the best, not the median: noise on a shared machine only slows).
    /// `quick`: the better of two single products after the warm-up.
    static func measure(_ kernel: GemmKernel, _ variant: GemmVariant, shape: (Int, Int, Int),
                        on device: OpenCLDevice, quick: Bool = false) throws -> Double {
        let (m, n, k) = shape
        let tag = DeviceTag.opencl(device.info.index)
        let a = try Tensor.randn(variant == .tn ? [k, m] : [m, k], seed: 1, on: tag)
        let b = try Tensor.randn(variant == .nt ? [n, k] : [k, n], seed: 2, on: tag)
        let c = try Tensor.empty([m, n], on: tag)
        let launch = GemmLaunch(kernel, variant)
        func run(_ times: Int) throws -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<times {
                try Tensor.run("matmul", a, b, c) { _, _, _ in } opencl: { device, a, b, c in
                    try launchMatmul(device, a, b, c, m: m, n: n, k: k, transA: variant == .tn,
                                     transB: variant == .nt, kernel: launch, beta: 0)
                }
            }
            try device.finish()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        let once = try run(1)
        if quick { return 2 * Double(m * n * k) / min(try run(1), try run(1)) / 1e9 }
        // A candidate far slower than the budget allows is judged on its one run.
        if once > 0.25 { return 2 * Double(m * n * k) / once / 1e9 }
        let reps = max(1, min(50, Int(0.02 / max(once, 1e-6))))
        let best = try (0..<3).map { _ in try run(reps) / Double(reps) }.min()!
        return 2 * Double(m * n * k) / best / 1e9
    }

    /// The entry in a cache file's bytes when `cachedPlan` accepts it, holding only the shape classes it keeps.
    static func cachedEntry(_ bytes: [UInt8], for info: OpenCLDeviceInfo, sourceHash: String) -> CacheEntry? {
        guard let plans = cachedPlan(bytes, for: info, sourceHash: sourceHash),
              var entry = try? JSONDecoder().decode(CacheEntry.self, from: Data(bytes)) else { return nil }
        entry.classes = plans.classes
        return entry
    }

    /// Writes `change(what file holds now)` to the cache `file` and returns it, under the file's lock, so that an
    /// addition made meanwhile by another process or device is read and kept, not overwritten. What the file holds
    /// counts only as `cachedEntry` reads it (a valid entry for `info` and `sourceHash`, its classes checked).
    static func updateCache(_ file: URL, for info: OpenCLDeviceInfo, sourceHash: String,
                            _ change: (CacheEntry?) -> CacheEntry) -> CacheEntry {
        withCacheFileLock(file) {
            let onDisk = readRegularFile(file.path).flatMap { cachedEntry($0, for: info, sourceHash: sourceHash) }
            let entry = change(onDisk)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            if let data = try? encoder.encode(entry) { writeCacheFile(data, to: file) }
            return entry
        }
    }
}

/// The GEMM plans of each opened device: tuned (or read from the tuner's cache) on the device's first product, and
/// kept with their kernel sources made, so a product looks up nothing by name; large products of a shape class not
/// seen before are tuned on their first product (once: the class's kernel is cached with the plans).
final class GemmPlans: @unchecked Sendable {
    static let shared = GemmPlans()

    /// One device's launches, by variant, for large and for batch-sized products, and per shape class.
    final class Launches: @unchecked Sendable {
        let nn, nt, tn: GemmLaunch
        let smallNN, smallNT, smallTN: GemmLaunch
        private let lock = NSLock()
        private var tuned: GemmTuner.Tuned
        private var classes: [String: GemmLaunch]
        init(_ tuned: GemmTuner.Tuned) {
            let (large, small) = (tuned.large, tuned.small)
            (nn, nt, tn) = (GemmLaunch(large.nn, .nn), GemmLaunch(large.nt, .nt), GemmLaunch(large.tn, .tn))
            (smallNN, smallNT, smallTN)
                = (GemmLaunch(small.nn, .nn), GemmLaunch(small.nt, .nt), GemmLaunch(small.tn, .tn))
            self.tuned = tuned
            classes = (tuned.entry?.classes ?? [:]).reduce(into: [:]) { out, item in
                if let name = item.key.split(separator: " ").first, let variant = GemmVariant(rawValue: String(name)) {
                    out[item.key] = GemmLaunch(item.value, variant)
                }
            }
        }
        /// The launch for a product of `variant` with `m·n·k` multiply-adds (by size only).
        func pick(_ variant: GemmVariant, multiplyAdds: Int) -> GemmLaunch {
            let small = multiplyAdds <= GemmTuner.smallProduct
            switch variant {
            case .nn: return small ? smallNN : nn
            case .nt: return small ? smallNT : nt
            case .tn: return small ? smallTN : tn
            }
        }

        /// The launch for this product in `fusion`'s form: a batch-sized one by `pick`; a large one by its shape
        /// class's kernel, tuned now on this product's operands in its fused form when the class is new (into
        /// scratch outputs) and cached. With tuning off (`CLNN_GEMM_TUNE=0`), `pick`'s.
        func launch(_ variant: GemmVariant, m: Int, n: Int, k: Int, on device: OpenCLDevice, a: CLBuffer,
                    b: CLBuffer, fusion: GemmFusion = .none,
                    extra: GemmFusionOperands = GemmFusionOperands()) -> GemmLaunch {
            let fallback = pick(variant, multiplyAdds: m * n * k)
            guard m * n * k > GemmTuner.smallProduct else { return fallback }
            let key = GemmTuner.classKey(variant, m: m, n: n, k: k, fusion: fusion)
            lock.lock()
            defer { lock.unlock() }
            if let known = classes[key] { return known }
            guard let entry = tuned.entry, let file = tuned.file else { return fallback }
            CLNNLog.logger.notice("tuning GEMM \(variant.rawValue) for \(m)x\(n)x\(k) on \(device.info.name) (once per shape class; cached)")
            let result = GemmTuner.tuneClass(device, variant, m: m, n: n, k: k, a: a, b: b, fusion: fusion,
                                             extra: extra, first: fallback.kernel)
            // The candidates' scratch (outputs, split-K partials up to 64 MiB, transposed operands) would stay in
            // the device's buffer pool, and a process's peak memory with it: let it go.
            if (try? device.finish()) != nil { device.bufferPool.drain() }
            guard let (kernel, measured) = result else {
                classes[key] = fallback
                return fallback
            }
            // What is on disk now (another process's classes, or its fresher plans) is kept; this class is added.
            tuned.entry = GemmTuner.updateCache(file, for: device.info, sourceHash: entry.sourceHash) { onDisk in
                var updated = onDisk ?? entry
                updated.classes = (updated.classes ?? [:]).merging([key: kernel]) { $1 }
                updated.measurements[key] = measured
                return updated
            }
            let made = GemmLaunch(kernel, variant)
            classes[key] = made
            return made
        }
    }

    private let lock = NSLock()
    private var launches: [ObjectIdentifier: Launches] = [:]

    func launches(for device: OpenCLDevice) throws -> Launches {
        lock.lock()
        defer { lock.unlock() }
        if let known = launches[ObjectIdentifier(device)] { return known }
        let made = Launches(try GemmTuner.plan(for: device))
        launches[ObjectIdentifier(device)] = made
        return made
    }
}

extension DeviceTag {
    /// Builds the kernels and picks (tunes, the first time) the GEMM kernels now, so that the first timed work
    /// does not pay for it. A no-op on cpu. (Here, beside the tuner, so the device seam need not know the ops.)
    public func warmUp() throws {
        guard let device = try Backend(self).openCLDevice else { return }
        _ = try device.buildAllPrograms()
        _ = try GemmPlans.shared.launches(for: device)
    }
}
