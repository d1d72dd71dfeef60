import COpenCL
import Foundation

/// Per-kernel timings from OpenCL profiling events, switched on by `CLNN_PROFILE=1`.
///
/// Every kernel launch then records an event; `report()` totals the device time per kernel name, with GFLOP/s for
/// products and GB/s for the rest (from each launch's stated cost). Ops on `cpu` are timed on the host, each under
/// its op's name with " (cpu)" after it.
final class Profiler: @unchecked Sendable {
    static let enabled = ProcessInfo.processInfo.environment["CLNN_PROFILE"].map { $0 != "" && $0 != "0" } ?? false
    static let shared = Profiler()

    struct Totals { var calls = 0; var seconds = 0.0; var flops = 0.0; var bytes = 0.0 }

    private let lock = NSLock()
    private var pending: [(String, CLEvent, Double, Double)] = []
    private var totals: [String: Totals] = [:]

    func record(_ name: String, _ event: CLEvent, cost: (flops: Double, bytes: Double)) {
        lock.lock()
        pending.append((name, event, cost.flops, cost.bytes))
        let full = pending.count >= 4096
        lock.unlock()
        if full { resolve() }
    }

    /// Adds one host op's wall time (a `cpu` op, timed around its loop).
    func recordHost(_ name: String, seconds: Double) {
        lock.lock()
        defer { lock.unlock() }
        totals[name + " (cpu)", default: Totals()].calls += 1
        totals[name + " (cpu)"]!.seconds += seconds
    }

    /// Waits for the recorded events and adds their times to the totals.
    private func resolve() {
        lock.lock()
        let events = pending
        pending.removeAll()
        lock.unlock()
        var add: [String: Totals] = [:]
        for (name, event, flops, bytes) in events {
            var handle: cl_event? = event.handle
            guard clWaitForEvents(1, &handle) == CL_SUCCESS else { continue }
            var start: cl_ulong = 0, end: cl_ulong = 0
            clGetEventProfilingInfo(event.handle, cl_profiling_info(CL_PROFILING_COMMAND_START), 8, &start, nil)
            clGetEventProfilingInfo(event.handle, cl_profiling_info(CL_PROFILING_COMMAND_END), 8, &end, nil)
            add[name, default: Totals()].calls += 1
            add[name]!.seconds += Double(end &- start) / 1e9
            add[name]!.flops += flops
            add[name]!.bytes += bytes
        }
        lock.lock()
        for (name, t) in add {
            totals[name, default: Totals()].calls += t.calls
            totals[name]!.seconds += t.seconds
            totals[name]!.flops += t.flops
            totals[name]!.bytes += t.bytes
        }
        lock.unlock()
    }

    /// The table of kernels by total device time, or nil when profiling is off or nothing ran.
    func report() -> String? {
        guard Self.enabled else { return nil }
        resolve()
        lock.lock()
        defer { lock.unlock() }
        guard !totals.isEmpty else { return nil }
        let all = totals.values.reduce(0) { $0 + $1.seconds }
        var out = "kernel or op                        calls    total ms      %   GFLOP/s     GB/s\n"
        for (name, t) in totals.sorted(by: { $0.value.seconds > $1.value.seconds }) {
            let rate = { (x: Double) in
                t.seconds > 0 && x > 0 ? String(format: "%9.1f", x / t.seconds / 1e9) : "        -"
            }
            out += name.padding(toLength: 34, withPad: " ", startingAt: 0)
                + String(format: "%7d %11.2f %6.1f", t.calls, t.seconds * 1e3, all > 0 ? 100 * t.seconds / all : 0)
                + " " + rate(t.flops) + " " + rate(t.bytes) + "\n"
        }
        return out + String(format: "total device and host-op time %.2f ms\n", all * 1e3)
    }
}

extension OpenCLRuntime {
    /// With `CLNN_PROFILE=1` in the environment: the device time of every kernel launched so far, totalled per
    /// kernel name (calls, milliseconds, GFLOP/s or GB/s), after waiting for the queued work. Nil without it.
    public func profileReport() -> String? { Profiler.shared.report() }
}
