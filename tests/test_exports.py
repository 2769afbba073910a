import queue_impls.kv as kvpkg


def test_all_names_exist_and_are_complete() -> None:
    public = {n for n in dir(kvpkg) if (not n.startswith("_") and n[0].isupper()) or n in {"open_kv"}}
    assert set(kvpkg.__all__) >= {"open_kv", "encode_key", "decode_key", "KvU64", "KvEntry", "CommitResult"}
    for name in kvpkg.__all__:
        assert hasattr(kvpkg, name), name
    missing = {n for n in public if n not in kvpkg.__all__ and not hasattr(__import__("typing"), n)}
    assert not missing, f"public names not in __all__: {missing}"


def test_the_meter_has_one_public_import_path_naming_every_public_name() -> None:
    import ast
    import inspect

    import queue_impls.meter as meter

    for name in meter.__all__:
        assert hasattr(meter, name), name
    # every public name defined in the meter's modules is exported here (else a user would need a second path)
    defined = set()
    for module_name in ("budget", "counting", "counts", "latency", "measurement", "nplusone", "trace"):
        tree = ast.parse(inspect.getsource(__import__(f"queue_impls.meter.{module_name}", fromlist=["_"])))
        for node in tree.body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.name[0] != "_":
                defined.add(node.name)
    internal = {"caller_site", "spawn_site", "is_toolkit_frame", "timer_of"}  # used by the meter itself
    assert defined - internal <= set(meter.__all__), defined - internal - set(meter.__all__)
