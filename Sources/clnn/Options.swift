import ArgumentParser
import Device
import Foundation
@_spi(CLI) import NN

/// `--data` and `--device`, shared by the commands that load data and run a model.
struct DataDeviceOptions: ParsableArguments {
    @Option(help: "A folder in the MNIST layout (the four standard IDX files, .gz or plain).")
    var data: String = MNISTFolder.defaultPath

    @Option(help: ArgumentHelp(
        "auto, cpu, opencl or opencl:N. auto = an OpenCL GPU if there is one; with only CPU-type OpenCL "
        + "(POCL), whichever of cpu and it trains this model faster (measured); else cpu. Under mpirun each "
        + "process takes the GPU (or, for opencl, the OpenCL device) of its local rank mod their count."))
    var device: String = "auto"

    /// The devices of a comma-separated `--device` list (`opencl:0,opencl:1`, `cpu,opencl`), for data-parallel
    /// training; nil for a single device (see `resolveDevice`).
    func deviceList() throws -> [DeviceTag]? {
        guard device.contains(",") else { return nil }
        let parts = device.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        if let empty = parts.firstIndex(where: \.isEmpty) {
            throw ValidationError("--device \(device): entry \(empty + 1) of the list is empty (a stray comma?); "
                + "a list names each device: cpu, opencl, opencl:N")
        }
        if parts.contains(where: { $0.lowercased() == "auto" }) {
            throw ValidationError("--device \(device): a list names each device (cpu, opencl, opencl:N); "
                + "auto is for one device")
        }
        return try parts.map { try DeviceTag(parsing: $0) }
    }

    /// `--device` as a training run's request.
    func deviceRequest() throws -> RunRequest.Devices {
        if let list = try deviceList() { return .list(list) }
        switch device.lowercased() {
        case "auto": return .auto
        case "opencl": return .openCL
        default: return .one(try DeviceTag(parsing: device))
        }
    }

    /// The chosen device. `auto` with a model to measure (`sizes`, `batchSize`) decides as `DeviceChoice.fastest`
    /// and says why on stderr; without one it takes the first OpenCL device, else cpu with a notice.
    func resolveDevice(sizes: [Int]? = nil, batchSize: Int = 64) throws -> DeviceTag {
        guard device.lowercased() == "auto" else { return try DeviceTag(parsing: device) }
        if let sizes {
            let decision = try DeviceChoice.fastest(sizes: sizes, batchSize: batchSize)
            warn("clnn: --device auto picked \(decision.device): \(decision.reason)")
            return decision.device
        }
        let tag = DeviceTag.preferred
        if tag == .cpu {
            warn("clnn: no OpenCL device (\(OpenCLRuntime.shared.discoveryNote ?? "none found")); running on cpu")
        }
        return tag
    }
}

/// Stops training cleanly on Ctrl-C or SIGTERM (as sent by systemd, docker, `timeout`): the first signal sets a
/// flag the training loop polls at each progress report, so the step finishes and the last checkpoint stays; a
/// second signal exits at once (128 + signal), removing a checkpoint's temporary file if one is being written —
/// except during a save (`SavedRun.isSaving`), which it lets finish: the run then stops as for the first signal.
enum Interrupt {
    /// The signal received, or 0.
    nonisolated(unsafe) static var signal: sig_atomic_t = 0

    static var requested: Bool { signal != 0 }
    /// The conventional exit status for the signal received (130 for SIGINT, 143 for SIGTERM).
    static var exitStatus: Int32 { 128 + Int32(signal) }

    static func install() {
        AtomicFile.prepareForSignalHandlers()
        _ = SavedRun.isSaving  // made now, not first in the handler
        for number in [SIGINT, SIGTERM] {
            Foundation.signal(number) { received in
                if Interrupt.signal != 0 && !SavedRun.isSaving {
                    AtomicFile.removePendingTemporaryFromSignalHandler()
                    let text = "\nclnn: a second signal: stopped at once (the last saved checkpoint is intact)\n"
                    _ = text.withCString { write(2, $0, strlen($0)) }
                    _exit(128 + received)
                }
                if Interrupt.signal == 0 { Interrupt.signal = received }
            }
        }
    }

    /// Test hook: with `CLNN_SIGNAL_AT_STEP=N`, SIGINT is raised at the first progress report at or after step N of
    /// an epoch (a Ctrl-C that lands mid-epoch, at a known step).
    static func testHook(step: Int) {
        guard !hookFired, let at = hookStep, step >= at else { return }
        hookFired = true
        raise(SIGINT)
    }
    nonisolated(unsafe) private static var hookFired = false
    private static let hookStep = ProcessInfo.processInfo.environment["CLNN_SIGNAL_AT_STEP"].flatMap(Int.init)

}

func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    return seconds < 60 ? String(format: "%.1fs", seconds)
        : String(format: "%dm%02ds", Int(seconds) / 60, Int(seconds) % 60)
}
