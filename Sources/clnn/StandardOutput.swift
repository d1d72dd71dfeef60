#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
@preconcurrency import Darwin
#endif

/// Makes the C `stdout` (which Swift's `print` writes through) line-buffered even when it is not a terminal.
func setLineBuffered() {
    setvbuf(stdout, nil, _IOLBF, 0)
}
