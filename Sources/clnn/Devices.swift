import ArgumentParser
import Device
import Foundation

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List cpu and every OpenCL device, and mark the default one.")

    func run() throws {
        let preferred = DeviceTag.preferred
        func mark(_ tag: DeviceTag) -> String { tag == preferred ? "*" : " " }
        print("\(mark(.cpu)) cpu        host CPU fallback (\(ProcessInfo.processInfo.activeProcessorCount) cores)")
        for info in OpenCLRuntime.shared.devices {
            let tag = DeviceTag.opencl(info.index)
            let memory = String(format: "%.1f GiB", Double(info.globalMemory) / 1_073_741_824)
            print("\(mark(tag)) \(tag.description.padding(toLength: 10, withPad: " ", startingAt: 0)) \(info.name)")
            print("             platform: \(info.platform), \(info.version), driver \(info.driverVersion)")
            print("             \(info.computeUnits) compute units, \(memory) global memory")
        }
        if let note = OpenCLRuntime.shared.discoveryNote {
            print("  (no OpenCL device: \(note))")
        }
        print("* = default device")
    }
}
