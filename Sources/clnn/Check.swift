import ArgumentParser
import Device
import Foundation

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Does CLNN compute correctly here? Every kernel it ships, on odd shapes, against a Double reference.",
        discussion: """
            Runs every op CLNN ships (each GEMM kernel the tuner may pick in each form, the fused linear forward and \
            backward, every activation, both losses, the optimisers, gather, reductions, elementwise ops) on every \
            device, compares each output with a Double reference and with the CPU fallback, and prints a table: op, \
            shape, device, largest absolute and relative error, result, time. A GEMM kernel a device cannot build or \
            hold is skipped with the reason, as the tuner skips it. Exits 1 on any failure, naming the op, the shape \
            and the first element past the tolerance. The tests run the same checks.
            """)

    @Option(help: "all, cpu, opencl or opencl:N.")
    var device: String = "all"

    @Option(help: ArgumentHelp("Only the checks whose op contains this text, or one of these comma-separated texts "
        + "(e.g. gemm, relu,loss)."))
    var only: String?

    @Flag(help: ArgumentHelp(
        "Products only as each device's GEMM plan runs them, not every kernel the tuner may pick (faster where "
        + "kernel builds are slow)."))
    var planOnly = false

    func run() throws {
        // (Each comma-separated name, blanks dropped: ",," names nothing, and is said so.)
        let texts = try only.map { text in
            let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
            guard !names.isEmpty else {
                throw ValidationError("--only '\(text)' names no op: give part of an op's name, or several "
                    + "separated by commas (--only gemm,softmax)")
            }
            return names
        }
        let tags = try benchDevices(device)
        for tag in tags where tag.isOpenCL {
            let info = OpenCLRuntime.shared.devices[tag.index]
            print("\(tag): \(info.name) (\(info.vendor)); \(info.version), driver \(info.driverVersion)")
            print("  \(info.computeUnits) compute units" + (info.maxClockMHz > 0 ? " at \(info.maxClockMHz) MHz" : "")
                  + ", local memory \(info.localMemory / 1024) KiB, max work-group \(info.maxWorkGroupSize), "
                  + "preferred float vector width \(info.preferredFloatVectorWidth), fp64 \(info.hasDouble ? "yes" : "no")"
                  + (info.peakGFLOPS.map { String(format: ", peak FP32 about %.0f GFLOP/s", $0) } ?? ""))
        }
        let checks = OpCheck.all.filter { check in
            let named = texts?.contains { check.op.localizedCaseInsensitiveContains($0) } ?? true
            return named && !(planOnly && check.openCLOnly)
        }
        guard !checks.isEmpty else { throw ValidationError("--only \(only ?? ""): no check's op contains it") }
        // Columns as wide as their longest entry (padding(toLength:) cuts what is longer).
        let opWidth = max(54, (checks.map(\.op.count).max() ?? 0) + 1)
        let shapeWidth = max(20, (checks.map(\.shape.count).max() ?? 0) + 1)
        print("op".padding(toLength: opWidth, withPad: " ", startingAt: 0)
              + "shape".padding(toLength: shapeWidth, withPad: " ", startingAt: 0)
              + "device    max abs   max rel   result      ms")
        let start = Date()
        var (passed, skipped) = (0, 0)
        var (failures, count): ([OpCheck.Result], Int) = ([], 0)
        for tag in tags {
            for check in checks where check.applies(to: tag) {
                count += 1
                let r = check.run(on: tag)
                let result = r.skipped != nil ? "skipped" : r.passed ? "pass" : "FAIL"
                print(r.op.padding(toLength: opWidth, withPad: " ", startingAt: 0)
                      + r.shape.padding(toLength: shapeWidth, withPad: " ", startingAt: 0)
                      + r.device.description.padding(toLength: 10, withPad: " ", startingAt: 0)
                      + String(format: "%7.1e   %7.1e   %-8@ %6.1f", r.maxAbsolute, r.maxRelative, result as NSString,
                               r.seconds * 1e3)
                      + (r.skipped.map { "  (\($0))" } ?? ""))
                if r.skipped != nil { skipped += 1 } else if r.passed { passed += 1 } else { failures.append(r) }
            }
        }
        print(String(format: "%d checks on %d device%@: %d passed, %d skipped, %d failed (%.1f s)", count,
                     tags.count, tags.count == 1 ? "" : "s", passed, skipped, failures.count, Date().timeIntervalSince(start)))
        guard failures.isEmpty else {
            for r in failures { warn("clnn check: FAILED \(r.op) \(r.shape) on \(r.device): \(r.failure ?? "")") }
            throw ExitCode(1)
        }
    }
}
