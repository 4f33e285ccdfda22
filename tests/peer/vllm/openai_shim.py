"""The slice of the `openai` client that vLLM's tests use, over httpx (`openai` is not a
dependency here): `client.completions.create(...)`, `client.chat.completions.create(...)`,
`client.models.list()` / `.retrieve(id)`, sync and async, with the SDK's exceptions.

    >>> obj({"a": {"b": [1, {"c": None}]}}).a.b[1].c is None
    True

Responses come back as attribute objects (a missing field reads as None, as the SDK's
optional fields do); `extra_body` and `extra_headers` are merged into the request as the SDK
does; a stream is an iterator of chunks that raises `APIError` on an error event, as the SDK's
`Stream` does.
"""

from __future__ import annotations

import json

import httpx


class APIError(Exception):
    def __init__(self, message: str, body=None):
        super().__init__(message)
        self.message, self.body = message, body


class APIStatusError(APIError):
    def __init__(self, response: httpx.Response):
        try:
            body = response.json()
            message = body["error"]["message"]
        except (ValueError, KeyError, TypeError):
            body, message = response.text, response.text
        super().__init__(f"Error code: {response.status_code} - {message}", body)
        self.status_code = response.status_code


class BadRequestError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class APIConnectionError(APIError):
    pass


class APITimeoutError(APIConnectionError):
    pass


class Obj:
    def __init__(self, data: dict):
        self.__dict__.update({k: obj(v) for k, v in data.items()})
        self._data = data

    def __getattr__(self, name):  # only called for a missing attribute: the SDK's None
        return None

    def __len__(self) -> int:  # a dict field (e.g. a top_logprobs entry) reads as the dict
        return len(self._data)

    def __getitem__(self, key):
        return obj(self._data[key])

    def __repr__(self) -> str:
        return f"Obj({self._data!r})"


def obj(value):
    if isinstance(value, dict):
        return Obj(value)
    if isinstance(value, list):
        return [obj(v) for v in value]
    return value


def _raise_for(response: httpx.Response) -> None:
    if response.status_code == 400:
        raise BadRequestError(response)
    if response.status_code == 404:
        raise NotFoundError(response)
    if response.status_code >= 400:
        raise APIStatusError(response)


def _body(kwargs: dict) -> tuple[dict, dict]:
    body = {k: v for k, v in kwargs.items() if k not in ("extra_body", "extra_headers")}
    body.update(kwargs.get("extra_body") or {})
    headers = {"Content-Type": "application/json", **(kwargs.get("extra_headers") or {})}
    return body, headers


def _event(line: str):
    if not line.startswith("data: ") or line == "data: [DONE]":
        return None
    data = json.loads(line[6:])
    if "error" in data:
        raise APIError(data["error"].get("message", ""), data)
    return obj(data)


def _wrap(exc: httpx.HTTPError) -> APIError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(repr(exc))
    return APIConnectionError(repr(exc))


class _Endpoint:
    def __init__(self, client, path: str):
        self.client, self.path = client, path

    def create(self, **kwargs):
        body, headers = _body(kwargs)
        try:
            if not body.get("stream"):
                r = self.client.http.post(self.path, content=json.dumps(body), headers=headers)
                _raise_for(r)
                return obj(r.json())
            return self._stream(body, headers)
        except httpx.HTTPError as exc:
            raise _wrap(exc) from exc

    def _stream(self, body, headers):
        ctx = self.client.http.stream("POST", self.path, content=json.dumps(body), headers=headers)
        r = ctx.__enter__()
        if r.status_code >= 400:
            r.read()
            ctx.__exit__(None, None, None)
            _raise_for(r)

        def chunks():
            try:
                for line in r.iter_lines():
                    if (chunk := _event(line)) is not None:
                        yield chunk
            except httpx.HTTPError as exc:
                raise _wrap(exc) from exc
            finally:
                ctx.__exit__(None, None, None)

        return chunks()


class _AsyncEndpoint(_Endpoint):
    async def create(self, **kwargs):
        body, headers = _body(kwargs)
        try:
            if not body.get("stream"):
                r = await self.client.http.post(self.path, content=json.dumps(body),
                                                headers=headers)  # fmt: skip
                _raise_for(r)
                return obj(r.json())
        except httpx.HTTPError as exc:
            raise _wrap(exc) from exc
        return self._astream(body, headers)

    async def _astream(self, body, headers):
        try:
            async with self.client.http.stream(
                "POST", self.path, content=json.dumps(body), headers=headers
            ) as r:
                if r.status_code >= 400:
                    await r.aread()
                    _raise_for(r)
                async for line in r.aiter_lines():
                    if (chunk := _event(line)) is not None:
                        yield chunk
        except httpx.HTTPError as exc:
            raise _wrap(exc) from exc


class _Models:
    def __init__(self, client):
        self.client = client

    def list(self):
        r = self.client.http.get("/models")
        _raise_for(r)
        return obj(r.json())

    def retrieve(self, model: str):
        r = self.client.http.get(f"/models/{model}")
        _raise_for(r)
        return obj(r.json())


class OpenAI:
    """`openai.OpenAI(base_url=..., api_key=..., max_retries=0)`: the sync client."""

    _endpoint = _Endpoint

    def __init__(self, base_url: str, timeout: float = 600.0, **_ignored):
        self.http = self._http(base_url, timeout)
        self.completions = self._endpoint(self, "/completions")
        self.chat = type("Chat", (), {})()
        self.chat.completions = self._endpoint(self, "/chat/completions")
        self.models = _Models(self)

    @staticmethod
    def _http(base_url, timeout):
        return httpx.Client(base_url=base_url, timeout=timeout, trust_env=False)

    def close(self):
        self.http.close()


class AsyncOpenAI(OpenAI):
    """`openai.AsyncOpenAI`: awaitable creates (no `models`: the ported tests list models
    with the sync client)."""

    _endpoint = _AsyncEndpoint

    def __init__(self, base_url: str, timeout: float = 600.0, **_ignored):
        super().__init__(base_url, timeout)
        self.models = None

    @staticmethod
    def _http(base_url, timeout):
        return httpx.AsyncClient(base_url=base_url, timeout=timeout, trust_env=False)

    async def aclose(self):
        await self.http.aclose()
