#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif

/// Makes the C `stdout` (which Swift's `print` writes through) line-buffered even when it is not a terminal.
func setLineBuffered() {
    setvbuf(stdout, nil, _IOLBF, 0)
}

/// Sends what `print` writes to /dev/null (every process but the first under mpirun).
func silenceStandardOutput() {
    _ = freopen("/dev/null", "w", stdout)
}
