"""The XLA flags every test process runs under (tests/conftest.py explains each), for the
benchmarks that measure what the tests compile (benchmarks/flat_optimizer.py)."""

TEST_XLA_FLAGS = (
    "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
    " --xla_cpu_use_fusion_emitters=false --xla_cpu_parallel_codegen_split_count=1"
    " --xla_cpu_opt_preset=FAST_COMPILE"
)
