"""The prediction server ``lt4rec serve``: validated ``/predict`` on the sparse per-task export,
following ``topics.models`` and swapping verified versions without a pause on the request path.

Modules: :mod:`.instances` (request validation and encoding), :mod:`.model` (a loaded
version), :mod:`.swap` (the atomic model reference and the follower thread), :mod:`.app`
(Starlette endpoints), :mod:`.metrics`, :mod:`.server` (uvicorn, one or N processes).
"""
