"""The public API for method plugins: import everything a plugin needs from here.

    from segma_bench.api import GenerativeMethod, MethodConfig, register, mlp

Names here are kept stable; modules behind them may move. docs/adding-a-method.md describes each one."""
from segma_bench.methods import (
                                 Batch,
                                 DataSpec,
                                 GenerativeMethod,
                                 LabeledSet,
                                 MethodConfig,
                                 OperationNotSupported,
                                 Recipe,
                                 get_method,
                                 register,
)
from segma_bench.methods.networks import (
                                 SEGMA_ARCHITECTURES,
                                 Unflatten,
                                 architecture_for,
                                 autoencoder,
                                 glorot_init_,
                                 mlp,
)

__all__ = ["Batch", "DataSpec", "GenerativeMethod", "LabeledSet", "MethodConfig", "OperationNotSupported", "Recipe",
           "SEGMA_ARCHITECTURES", "Unflatten", "architecture_for", "autoencoder", "get_method", "glorot_init_", "mlp",
           "register"]
