"""neural-tangents reference kernels, run *inside* the neural-tangents venv (scripts/nt_venv.sh).

Not a test module and not part of nnft: it imports neural-tangents 0.6.5, which needs jax
0.4.30. tests/test_neural_tangents.py (and benchmarks) run it as a subprocess:

    <venv>/bin/python tests/nt_kernels.py < request.json > response.json

Request::

    {"x1": [[...], ...], "x2": [[...], ...] or null, "x64": true,
     "cases": [{"kind": "kernel" | "empirical_ntk", "activation": "erf" | "relu" | "identity"
                | "tanh", "depth": L, "width": N, "W_std": s_w, "b_std": s_b or null (no bias),
                "parameterization": "ntk" | "standard",
                "params": "file.npz" (empirical_ntk only; W0, b0, ..., W<L>, b<L> in
                          neural-tangents' layout, W (fan_in, fan_out), b (fan_out,)),
                "repeat": 3 (empirical_ntk only: timed calls after the compiling one),
                "tanh_degree": 200 (tanh only: Gauss-Hermite degree of the numerical kernel)}]}

Response: ``{"versions": {...}, "results": [{"nngp": P x Q, "ntk": P x Q}, or
{"ntk": P x Q, "seconds": [...], "compile_seconds": t}]}``, one result per case.
The network is ``stax.serial(Dense(N), act, ..., Dense(N), act, Dense(1))``.
"""

import json
import sys
import time


def _act(stax, name, degree):
    if name == "erf":
        return stax.Erf()
    if name == "relu":
        return stax.Relu()
    if name == "identity":
        return stax.Identity()
    if name == "tanh":
        import jax.numpy as jnp

        return stax.ElementwiseNumerical(fn=jnp.tanh, deg=degree)
    raise ValueError(f"activation: got {name!r}; allowed values: erf, relu, identity, tanh")


def _network(stax, case):
    dense = {"W_std": case["W_std"], "b_std": case["b_std"],
                 "parameterization": case["parameterization"]}
    layers = []
    for _ in range(case["depth"]):
        layers += [stax.Dense(case["width"], **dense),
                   _act(stax, case["activation"], case.get("tanh_degree", 200))]
    layers.append(stax.Dense(1, **dense))
    return stax.serial(*layers)


def main():
    request = json.load(sys.stdin)
    import jax

    jax.config.update("jax_enable_x64", bool(request.get("x64", True)))
    import jax.numpy as jnp
    import neural_tangents as nt
    import numpy as np
    from neural_tangents import stax

    x1 = jnp.asarray(request["x1"])
    x2 = None if request.get("x2") is None else jnp.asarray(request["x2"])
    results = []
    for case in request["cases"]:
        _, apply_fn, kernel_fn = _network(stax, case)
        if case.get("kind", "kernel") == "kernel":
            k = kernel_fn(x1, x2, ("nngp", "ntk"))
            results.append({"nngp": np.asarray(k.nngp).tolist(), "ntk": np.asarray(k.ntk).tolist()})
            continue
        data = np.load(case["params"])
        params = []
        for i in range(case["depth"] + 1):
            b = data[f"b{i}"].reshape(1, -1) if f"b{i}" in data else None
            params.append((jnp.asarray(data[f"W{i}"]), None if b is None else jnp.asarray(b)))
            if i < case["depth"]:
                params.append(())
        ntk_fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0))
        t0 = time.perf_counter()
        out = ntk_fn(x1, x2, params).block_until_ready()
        compile_s = time.perf_counter() - t0
        seconds = []
        for _ in range(int(case.get("repeat", 3))):
            t0 = time.perf_counter()
            out = ntk_fn(x1, x2, params).block_until_ready()
            seconds.append(time.perf_counter() - t0)
        results.append({"ntk": np.asarray(out).tolist(), "seconds": seconds,
                        "compile_seconds": compile_s})
    json.dump({"versions": {"jax": jax.__version__, "neural_tangents": nt.__version__},
               "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
