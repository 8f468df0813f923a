"""Both sides of the worker <-> model process seam declare every request, with the same parameters."""

import inspect

from streamrec.runtime.model_client import ModelClient
from streamrec.runtime.model_host import ModelHost
from streamrec.runtime.model_seam import REQUESTS, ModelService


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_host_and_the_client_declare_every_request_of_the_seam():
    assert set(REQUESTS) >= {"warm_start", "refresh", "observe", "lookup", "sweep_stale", "promote_candidate"}
    for name in REQUESTS:
        declared = _parameters(getattr(ModelService, name))
        assert _parameters(getattr(ModelHost, name)) == declared, name
        assert _parameters(getattr(ModelClient, name)) == declared, name
        assert inspect.iscoroutinefunction(getattr(ModelClient, name)), name


def test_the_client_sends_nothing_but_the_seams_requests():
    public = {
        name
        for name, value in vars(ModelClient).items()
        if inspect.iscoroutinefunction(value) and not name.startswith("_")
    }
    assert public == set(REQUESTS)
