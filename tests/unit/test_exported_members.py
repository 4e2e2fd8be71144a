import strata


def test_public_surface_is_pinned() -> None:
    assert strata.__all__ == sorted(strata.__all__)
    assert set(strata.__all__) == {
        "AppSpec", "BatchModel", "BatchingSpec", "DecodeEngine", "DeploymentSpec", "Embedding", "GatewaySpec",
        "InvalidRequest", "ModelFailed", "ModelNotFound", "ModelServer", "ModelSpec", "NotReady", "Overloaded",
        "RequestTooLarge", "ResourcesSpec", "RouteSpec", "SpecError", "StrataError", "TargetsSpec", "__version__",
        "create_app", "default_app", "load_spec", "parse_spec",
    }  # fmt: skip
    for name in strata.__all__:
        assert getattr(strata, name) is not None
