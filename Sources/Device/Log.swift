import Foundation
import Logging

/// Where the library's notices go: a swift-log `Logger` labelled `clnn`.
///
/// The library says little — that it is tuning the GEMM kernels for a new device (once, at `notice`), what it
/// decided when asked to choose a device — and nothing per step. By default the messages go wherever the process's
/// `LoggingSystem` sends them (swift-log's default: stderr). To silence them, raise the level or replace the logger:
///
/// ```swift
/// CLNNLog.logger.logLevel = .warning          // keep warnings and errors only
/// CLNNLog.logger = Logger(label: "clnn") { _ in SwiftLogNoOpLogHandler() }  // nothing at all
/// ```
public enum CLNNLog {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var current = Logger(label: "clnn")

    /// The logger the library writes to. Safe to read and set from any thread.
    public static var logger: Logger {
        get { lock.withLock { current } }
        set { lock.withLock { current = newValue } }
    }
}
