import Device
import Foundation
import Logging

/// The library's notices on stderr as `clnn: message`, like the command's own.
struct PlainStderrLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        warn("clnn: \(event.level >= .warning ? "\(event.level): " : "")\(event.message)")
    }
}
