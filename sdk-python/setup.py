# The native extension `waitstate._native` (native/, PyO3) is built by setuptools-rust.
# Everything else about the package is in pyproject.toml.
from setuptools import setup
from setuptools_rust import Binding, RustExtension

setup(
    rust_extensions=[
        RustExtension("waitstate._native", path="native/Cargo.toml", binding=Binding.PyO3, debug=False),
    ],
    zip_safe=False,
)
