import queue_impls.kv as kvpkg


def test_all_names_exist_and_are_complete() -> None:
    public = {n for n in dir(kvpkg) if (not n.startswith("_") and n[0].isupper()) or n in {"open_kv"}}
    assert set(kvpkg.__all__) >= {"open_kv", "encode_key", "decode_key", "KvU64", "KvEntry", "CommitResult"}
    for name in kvpkg.__all__:
        assert hasattr(kvpkg, name), name
    missing = {n for n in public if n not in kvpkg.__all__ and not hasattr(__import__("typing"), n)}
    assert not missing, f"public names not in __all__: {missing}"
