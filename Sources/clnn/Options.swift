import ArgumentParser
import Device
import Foundation
import NN

/// `--data` and `--device`, shared by the commands that load data and run a model.
struct DataDeviceOptions: ParsableArguments {
    @Option(help: "A folder in the MNIST layout (the four standard IDX files, .gz or plain).")
    var data: String = MNISTFolder.defaultPath

    @Option(help: "auto, cpu, opencl or opencl:N. auto = the first OpenCL device, else cpu.")
    var device: String = "auto"

    /// The chosen device; `auto` falls back to cpu with a one-line notice on stderr.
    func resolveDevice() throws -> DeviceTag {
        if device.lowercased() == "auto" {
            let tag = DeviceTag.preferred
            if tag == .cpu {
                warn("clnn: no OpenCL device (\(OpenCLRuntime.shared.discoveryNote ?? "none found")); running on cpu")
            }
            return tag
        }
        return try DeviceTag(parsing: device)
    }

    /// A one-line description of `tag`.
    static func describe(_ tag: DeviceTag) -> String {
        guard tag.isOpenCL, OpenCLRuntime.shared.devices.indices.contains(tag.index) else { return "cpu" }
        let info = OpenCLRuntime.shared.devices[tag.index]
        return "\(tag) (\(info.name), \(info.platform))"
    }
}

/// Stops training cleanly on Ctrl-C: the first SIGINT sets a flag the training loop polls; a second one exits.
enum Interrupt {
    nonisolated(unsafe) static var requested: sig_atomic_t = 0

    static func install() {
        signal(SIGINT) { _ in
            if Interrupt.requested != 0 { _exit(130) }
            Interrupt.requested = 1
        }
    }
}

func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    return seconds < 60 ? String(format: "%.1fs", seconds) : String(format: "%dm%02ds", Int(seconds) / 60, Int(seconds) % 60)
}
