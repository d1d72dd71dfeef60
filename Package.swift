// swift-tools-version: 6.1
import Foundation
import PackageDescription

let package = Package(
    name: "CLNN",
    platforms: [.macOS(.v13)],
    products: [
        // `import CLNN`: the whole library (Device and NN). The command line's dependencies stay out of it.
        .library(name: "CLNN", targets: ["CLNN"]),
        .library(name: "Device", targets: ["Device"]),
        .library(name: "NN", targets: ["NN"]),
        .executable(name: "clnn", targets: ["clnn"]),
    ],
    // The command line is a trait, on by default: a package that uses CLNN as a library depends on it with
    // `traits: []` and so never fetches (nor builds the plugins of) the command line's argument parser.
    traits: [
        .trait(name: "CommandLine", description: "The clnn command line (and its dependency, swift-argument-parser)."),
        .default(enabledTraits: ["CommandLine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // OpenCL's C API, loaded at run time (dlopen): the binary runs on cpu where no OpenCL is installed.
        // Building needs the headers only (Debian: ocl-icd-opencl-dev or opencl-c-headers).
        .target(name: "COpenCL", linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Open MPI's C API, loaded at run time (dlopen): multi-process training under mpirun; nothing without it.
        .target(name: "CMPI", linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        .executableTarget(name: "EmbedKernels"),
        .plugin(
            name: "EmbedKernelsPlugin",
            capability: .buildTool(),
            dependencies: ["EmbedKernels"]
        ),
        // The CPU fallback's fast GEMM. No unsafe flags (they would keep users from depending on CLNN by version):
        // its kernels are vector code that stays fast enough at -O0 for the debug test suite.
        .target(name: "CGemm"),
        .target(
            name: "Device",
            dependencies: ["COpenCL", "CGemm", .product(name: "RealModule", package: "swift-numerics"),
                           .product(name: "Logging", package: "swift-log")],
            plugins: ["EmbedKernelsPlugin"]
        ),
        .target(name: "NN", dependencies: ["Device", "CZlib", "CMPI"]),
        .target(name: "CLNN", dependencies: ["Device", "NN"]),
        // Compiler-derived gradients of the reference forward passes (Swift's differentiable programming), for the
        // tests and `clnn inspect --gradients`; empty where the toolchain lacks _Differentiation. Not in any product.
        .target(name: "AutogradReference", dependencies: ["Device"]),
        .executableTarget(
            name: "clnn",
            dependencies: [
                "Device", "NN", "AutogradReference",
                .product(name: "ArgumentParser", package: "swift-argument-parser", condition: .when(traits: ["CommandLine"])),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["Device", "NN"], path: "Tests/TestSupport"),
        .testTarget(name: "DeviceTests", dependencies: ["Device", "TestSupport"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "Device", "TestSupport", "AutogradReference"]),
    ]
)

// The documentation plugin (`swift package generate-documentation`) only when asked for, so that packages depending
// on CLNN never fetch it: CLNN_DOCS=1 swift package generate-documentation --target CLNN (scripts/build-docs).
if ProcessInfo.processInfo.environment["CLNN_DOCS"] == "1" {
    package.dependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"))
}
