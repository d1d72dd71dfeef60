@testable import Device
import TestSupport
import XCTest

final class GemmKernelTests: XCTestCase {
    func testDefaultPlansServeTheirVariants() throws {
        try requireOpenCL()
        for info in OpenCLRuntime.shared.devices {
            let plan = GemmPlan.defaults(for: info)
            for variant in GemmVariant.allCases { XCTAssertTrue(plan[variant].serves(variant), "\(variant)") }
        }
        for variant in GemmVariant.allCases {
            XCTAssertTrue(GemmPlan.candidates(variant).allSatisfy { $0.serves(variant) })
        }
    }
}

final class GemmTunerCacheTests: XCTestCase {
    let info = OpenCLDeviceInfo(index: 0, name: "test-device", platform: "test", vendor: "v", version: "OpenCL 1.2",
                                driverVersion: "1.0", computeUnits: 2, globalMemory: 1 << 30, maxAllocation: 1 << 28,
                                localMemory: 32768, maxWorkGroupSize: 256, isCPU: true)

    private func entry(_ plan: String, small: String? = nil) -> [UInt8] {
        Array("""
        {"device": "test-device", "driver": "1.0", "sourceHash": "abc", "measurements": {},
         "plan": \(plan), "small": \(small ?? plan)}
        """.utf8)
    }

    /// A damaged or edited tuner cache must never reach a kernel launch: rm 0 divides by zero, wptM 3 computes garbage.
    func testCachedPlansWithUnknownKernelConfigurationsAreDiscarded() throws {
        let good = GemmPlan.defaults(for: info)
        let encoded = String(decoding: try JSONEncoder().encode(good), as: UTF8.self)
        XCTAssertEqual(GemmTuner.cachedPlan(entry(encoded), for: info, sourceHash: "abc")?.large, good)
        XCTAssertEqual(GemmTuner.cachedPlan(entry(encoded), for: info, sourceHash: "abc")?.small, good)
        XCTAssertNil(GemmTuner.cachedPlan(entry(encoded), for: info, sourceHash: "other"), "another matmul.cl")

        var zeroRows = good
        zeroRows.nn = .columns(vw: 8, rm: 0, rn: 2)
        var badTile = good
        badTile.tn = .tiled(GemmConfig(tsM: 32, tsN: 32, tsK: 16, wptM: 3, wptN: 4))
        var hugeVector = good
        hugeVector.nt = .dots(vw: 1 << 20, dm: 3, dn: 4)
        for bad in [zeroRows, badTile, hugeVector] {
            XCTAssertFalse(bad.isKnown(for: info))
            let text = String(decoding: try JSONEncoder().encode(bad), as: UTF8.self)
            XCTAssertNil(GemmTuner.cachedPlan(entry(text), for: info, sourceHash: "abc"), text)
            XCTAssertNil(GemmTuner.cachedPlan(entry(encoded, small: text), for: info, sourceHash: "abc"),
                         "small: \(text)")
        }
        XCTAssertNil(GemmTuner.cachedPlan(Array("{ not json".utf8), for: info, sourceHash: "abc"))
        let withoutSmall = Array((#"{"device": "test-device", "driver": "1.0", "sourceHash": "abc", "# +
            #""measurements": {}, "plan": \#(encoded)}"#).utf8)
        XCTAssertNil(GemmTuner.cachedPlan(withoutSmall, for: info, sourceHash: "abc"),
                     "an entry of the one-plan format is retuned")
    }
}

extension GemmTunerCacheTests {
    /// A plan whose cache says its NN kernel ran far slower than it runs now was tuned while the machine was busy
    /// (every candidate slow, the winner chance): it is tuned again. One that recorded a rate the kernel cannot beat
    /// now is kept.
    func testAPlanTunedUnderLoadIsTunedAgain() throws {
        try requireOpenCL()
        let device = try OpenCLRuntime.shared.device(0)
        let plan = GemmPlan.defaults(for: device.info)
        let encoded = String(decoding: try JSONEncoder().encode(plan), as: UTF8.self)
        func cache(recorded: Double) -> [UInt8] {
            Array("""
            {"device": "test-device", "driver": "1.0", "sourceHash": "abc",
             "measurements": {"nn": {"\(plan.nn.description)": \(recorded)}}, "plan": \(encoded), "small": \(encoded)}
            """.utf8)
        }
        let stale = GemmTuner.tunedUnderLoad(cache(recorded: 1e-6), plan, on: device)
        XCTAssertNotNil(stale)
        XCTAssertTrue(stale?.contains("then") ?? false, stale ?? "")
        XCTAssertNil(GemmTuner.tunedUnderLoad(cache(recorded: 1e9), plan, on: device), "faster than any device")
        XCTAssertNil(GemmTuner.tunedUnderLoad(entry(encoded), plan, on: device), "nothing recorded: kept")
    }
}

/// Large products are tuned per shape class, on their first product.
final class GemmShapeClassTests: XCTestCase {
    func testSizesWithinAFactorOfRootTwoShareAClass() {
        let key = GemmTuner.classKey(.nn, m: 64, n: 12544, k: 288)
        XCTAssertEqual(GemmTuner.classKey(.nn, m: 60, n: 12000, k: 300), key)
        XCTAssertNotEqual(GemmTuner.classKey(.nn, m: 128, n: 12544, k: 288), key)
        XCTAssertNotEqual(GemmTuner.classKey(.nt, m: 64, n: 12544, k: 288), key)
        XCTAssertNotEqual(GemmTuner.classKey(.nn, m: 64, n: 12544, k: 9), key)
    }

    /// Cached classes whose variant or kernel the tuner never makes are dropped; the others are kept.
    func testCachedShapeClassesAreCheckedLikePlans() throws {
        let info = OpenCLDeviceInfo(index: 0, name: "test-device", platform: "test", vendor: "v", version: "OpenCL 1.2",
                                    driverVersion: "1.0", computeUnits: 2, globalMemory: 1 << 30,
                                    maxAllocation: 1 << 28, localMemory: 32768, maxWorkGroupSize: 256, isCPU: true)
        let plan = GemmPlan.defaults(for: info)
        let encoded = String(decoding: try JSONEncoder().encode(plan), as: UTF8.self)
        let good = String(decoding: try JSONEncoder().encode(GemmKernel.columns(vw: 16, rm: 4, rn: 1)), as: UTF8.self)
        let bad = String(decoding: try JSONEncoder().encode(GemmKernel.columns(vw: 8, rm: 0, rn: 2)), as: UTF8.self)
        let dots = String(decoding: try JSONEncoder().encode(GemmKernel.dots(vw: 8, dm: 2, dn: 4)), as: UTF8.self)
        let bytes = Array("""
        {"device": "test-device", "driver": "1.0", "sourceHash": "abc", "measurements": {},
         "plan": \(encoded), "small": \(encoded),
         "classes": {"nn 12-27-16": \(good), "nn 10-31-6": \(bad), "xx 1-2-3": \(good), "nn 1-1-1": \(dots)}}
        """.utf8)
        let classes = try XCTUnwrap(GemmTuner.cachedPlan(bytes, for: info, sourceHash: "abc")).classes
        let expected: [String: GemmKernel] = ["nn 12-27-16": .columns(vw: 16, rm: 4, rn: 1)]
        XCTAssertEqual(classes, expected)
    }

    /// Two additions to one cache file at once (two devices of one name, or two processes on one host) keep both:
    /// the second waits for the first's write and reads it (before the file lock, it read the file as it was and its
    /// write dropped the first's class).
    func testTwoAdditionsToOneCacheFileAtOnceKeepBoth() throws {
        let info = OpenCLDeviceInfo(index: 0, name: "test-device", platform: "test", vendor: "v", version: "OpenCL 1.2",
                                    driverVersion: "1.0", computeUnits: 2, globalMemory: 1 << 30,
                                    maxAllocation: 1 << 28, localMemory: 32768, maxWorkGroupSize: 256, isCPU: true)
        let plan = GemmPlan.defaults(for: info)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("clnn-cache-lock-\(getpid())")
        try? FileManager.default.removeItem(at: folder)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("gemm.json")
        let empty = GemmTuner.CacheEntry(device: info.name, driver: info.driverVersion, sourceHash: "h", plan: plan,
                                         small: plan, measurements: [:], classes: [:])
        _ = GemmTuner.updateCache(file, for: info, sourceHash: "h") { _ in empty }
        @Sendable func adding(_ key: String, _ kernel: GemmKernel) -> (GemmTuner.CacheEntry?) -> GemmTuner.CacheEntry {
            { onDisk in
                var entry = onDisk ?? empty
                entry.classes?[key] = kernel
                return entry
            }
        }
        let (firstHasRead, firstDone) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
        let first = Thread {
            defer { firstDone.signal() }
            _ = GemmTuner.updateCache(file, for: info, sourceHash: "h") { onDisk in
                firstHasRead.signal()
                Thread.sleep(forTimeInterval: 0.3)  // the second addition starts meanwhile
                return adding("nn 1-2-3", plan.nn)(onDisk)
            }
        }
        first.start()
        firstHasRead.wait()
        _ = GemmTuner.updateCache(file, for: info, sourceHash: "h", adding("tn 4-5-6", plan.tn))
        firstDone.wait()
        let bytes = try XCTUnwrap(readRegularFile(file.path))
        let classes = try XCTUnwrap(GemmTuner.cachedPlan(bytes, for: info, sourceHash: "h")).classes
        XCTAssertEqual(classes, ["nn 1-2-3": plan.nn, "tn 4-5-6": plan.tn])
    }

    /// A large product of a class not seen before is tuned once, recorded in the cache file beside what the file
    /// already holds, and reused; a product that adds to its output is tuned on a scratch buffer (its output is not
    /// touched).
    func testALargeProductsClassIsTunedOnceRecordedAndReused() throws {
        try requireOpenCL()
        let device = try OpenCLRuntime.shared.device(0)
        let plan = GemmPlan.defaults(for: device.info)
        let (launches, file, folder) = try Self.launchesWithOwnCache("classes", device, measurements: ["nn": ["kept": 1]],
                                                                     classes: ["tn 2-2-2": plan.tn])
        defer { try? FileManager.default.removeItem(at: folder) }
        let (m, n, k) = (37, 1031, 301)  // 11.5M multiply-adds: a large product
        XCTAssertGreaterThan(m * n * k, GemmTuner.smallProduct)
        let tag = DeviceTag.opencl(0)
        let a = try Tensor.randn([m, k], seed: 5, on: tag), b = try Tensor.randn([n, k], seed: 6, on: tag)
        let c = try Tensor.randn([m, n], seed: 7, on: tag)
        let before = try c.toArray()
        let (ab, bb) = (try XCTUnwrap(a.openCLMemory?.1), try XCTUnwrap(b.openCLMemory?.1))
        let first = launches.launch(.nt, m: m, n: n, k: k, on: device, a: ab, b: bb)
        XCTAssertEqual(try c.toArray(), before, "tuned on scratch: the output it would add to is untouched")
        XCTAssertTrue(first.kernel.serves(.nt))
        let recorded = try JSONDecoder().decode(GemmTuner.CacheEntry.self,
                                                from: Data(XCTUnwrap(readRegularFile(file.path))))
        let key = GemmTuner.classKey(.nt, m: m, n: n, k: k)
        XCTAssertEqual(recorded.classes?[key], first.kernel)
        XCTAssertEqual(recorded.classes?["tn 2-2-2"], plan.tn, "what the file held is kept")
        XCTAssertEqual(recorded.measurements["nn"]?["kept"], 1)
        XCTAssertFalse(recorded.measurements[key]?.isEmpty ?? true)
        let bytes = readRegularFile(file.path)
        XCTAssertEqual(GemmTuner.classKey(.nt, m: m + 1, n: n, k: k), key)
        XCTAssertEqual(launches.launch(.nt, m: m + 1, n: n, k: k, on: device, a: ab, b: bb).kernel,
                       first.kernel, "the same class: no second tuning")
        XCTAssertEqual(readRegularFile(file.path), bytes)
    }

    /// A class is tuned on the product's own operands (`tuneClass`): the kernel serves the variant; the same large
    /// product through `Tensor.matmul` (its class's kernel) matches the CPU's.
    func testANewShapeClassIsTunedOnItsProduct() throws {
        try requireOpenCL()
        let device = try OpenCLRuntime.shared.device(0)
        let (m, n, k) = (37, 1031, 301)
        let a = try Tensor.randn([m, k], seed: 3, on: .opencl(0)), b = try Tensor.randn([n, k], seed: 4, on: .opencl(0))
        let c = try Tensor.empty([m, n], on: .opencl(0))
        guard let (ab, bb, cb) = try? (XCTUnwrap(a.openCLMemory?.1), XCTUnwrap(b.openCLMemory?.1),
                                       XCTUnwrap(c.openCLMemory?.1)) else { return XCTFail("no buffers") }
        let before = try c.toArray()
        let (kernel, measured) = try XCTUnwrap(GemmTuner.tuneClass(device, .nt, m: m, n: n, k: k, a: ab, b: bb))
        XCTAssertEqual(try c.toArray(), before, "tuned into scratch buffers")
        _ = cb
        XCTAssertTrue(kernel.serves(.nt))
        XCTAssertFalse(measured.isEmpty)
        XCTAssertTrue(measured.values.allSatisfy { $0 > 0 }, "\(measured)")
        let product = try a.matmul(b, transposeOther: true).toArray()
        let reference = try a.to(.cpu).matmul(try b.to(.cpu), transposeOther: true).toArray()
        for (x, y) in zip(product, reference) { XCTAssertEqual(x, y, accuracy: 1e-3) }
    }
    /// A fused layer product's class is its own ("… fN"), tuned in its fused form — the weight gradient with the bias
    /// gradient beside it, on a batch long enough for the split-K kernels — into scratch buffers: the gradients it
    /// would add to are untouched, and the product through the class's kernel, accumulated, matches the CPU's.
    func testAFusedProductIsTunedInItsFusedForm() throws {
        try requireOpenCL()
        let device = try OpenCLRuntime.shared.device(0)
        let (launches, file, folder) = try Self.launchesWithOwnCache("fused", device)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (batch, inputs, outputs) = (3001, 67, 45)  // 9M multiply-adds, K = 3001: split-K candidates too
        XCTAssertGreaterThan(batch * inputs * outputs, GemmTuner.smallProduct)
        let tag = DeviceTag.opencl(0)
        let x = try Tensor.randn([batch, inputs], seed: 8, on: tag), dz = try Tensor.randn([batch, outputs], seed: 9, on: tag)
        let dw = try Tensor.randn([inputs, outputs], seed: 10, on: tag), db = try Tensor.randn([outputs], seed: 11, on: tag)
        let (dw0, db0) = (try dw.toArray(), try db.toArray())
        let fusion = GemmFusion(biasGradient: true)
        let extra = GemmFusionOperands(db: try XCTUnwrap(db.openCLMemory?.1))
        let launch = launches.launch(.tn, m: inputs, n: outputs, k: batch, on: device,
                                     a: try XCTUnwrap(x.openCLMemory?.1), b: try XCTUnwrap(dz.openCLMemory?.1),
                                     fusion: fusion, extra: extra)
        XCTAssertEqual(try dw.toArray(), dw0, "tuned into scratch: the weight gradient is untouched")
        XCTAssertEqual(try db.toArray(), db0, "and the bias gradient")
        let recorded = try JSONDecoder().decode(GemmTuner.CacheEntry.self,
                                                from: Data(XCTUnwrap(readRegularFile(file.path))))
        let key = GemmTuner.classKey(.tn, m: inputs, n: outputs, k: batch, fusion: fusion)
        XCTAssertTrue(key.hasSuffix(" f\(fusion.index)"), key)
        XCTAssertEqual(recorded.classes?[key], launch.kernel)
        // The size plan's kernel is timed first and the split-K ones next: unless the budget ran out on the first
        // (a slow device: llvmpipe takes seconds for it), they were timed.
        let timed = recorded.measurements[key] ?? [:]
        XCTAssertFalse(timed.isEmpty)
        if timed.count > 1 {
            XCTAssertTrue(timed.keys.contains { $0.contains("split K") }, "the split-K kernels were timed: \(timed)")
        }
        try Tensor.linearBackward(Rows(x), dz, weightGradient: dw, biasGradient: db, accumulate: true)
        let xs = try x.toArray(), dzs = try dz.toArray(), (gw, gb) = (try dw.toArray(), try db.toArray())
        for i in 0..<inputs {
            for j in 0..<outputs {
                let want = (0..<batch).reduce(Double(dw0[i * outputs + j])) {
                    $0 + Double(xs[$1 * inputs + i]) * Double(dzs[$1 * outputs + j])
                }
                XCTAssertEqual(Double(gw[i * outputs + j]), want, accuracy: 1e-3 * max(1, abs(want)))
            }
        }
        for j in 0..<outputs {
            let want = (0..<batch).reduce(Double(db0[j])) { $0 + Double(dzs[$1 * outputs + j]) }
            XCTAssertEqual(Double(gb[j]), want, accuracy: 1e-3 * max(1, abs(want)))
        }
    }
    /// A device's launches over a cache file of their own (the default plans, `measurements` and `classes`) in a
    /// fresh temporary folder, which the caller removes.
    private static func launchesWithOwnCache(_ name: String, _ device: OpenCLDevice,
                                             measurements: [String: [String: Double]] = [:],
                                             classes: [String: GemmKernel] = [:]) throws
        -> (GemmPlans.Launches, URL, URL) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("clnn-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("gemm.json")
        let plan = GemmPlan.defaults(for: device.info)
        let entry = GemmTuner.CacheEntry(device: device.info.name, driver: device.info.driverVersion, sourceHash: "h",
                                         plan: plan, small: plan, measurements: measurements, classes: classes)
        _ = GemmTuner.updateCache(file, for: device.info, sourceHash: "h") { _ in entry }
        return (GemmPlans.Launches(GemmTuner.Tuned(large: plan, small: plan, entry: entry, file: file)), file, folder)
    }
}
