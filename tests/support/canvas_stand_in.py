"""A stand-in for Canvas on 127.0.0.1: exactly the REST endpoints ``canvasapi`` calls to attach a file to a
submission comment, recording every request it receives.

    GET  /api/v1/courses/:course                                           canvas.get_course
    GET  /api/v1/courses/:course/assignments/:assignment                   course.get_assignment
    GET  /api/v1/courses/:course/assignments/:assignment/submissions       assignment.get_submissions
    POST /api/v1/courses/:course/assignments/:assignment/submissions/:user/comments/files
                                                                           upload_comment, step 1: where to send it
    POST /upload/:n                          (no token, multipart)         step 2: the file itself
    PUT  /api/v1/courses/:course/assignments/:assignment/submissions/:user step 3: the comment with the file id

Every /api/v1 request must carry ``Authorization: Bearer <token>``; anything else is a 404.
"""
import email.parser
import email.policy
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@dataclass
class Received:
    method: str
    path: str
    query: dict
    form: dict  # url-encoded fields, or a multipart body's fields (a file: its bytes)
    authorization: str | None


@dataclass
class CanvasStandIn:
    course: str
    assignment: str
    users: list  # Canvas user ids enrolled (each has a submission)
    token: str
    requests: list = field(default_factory=list)  # Received, in order
    comments: dict = field(default_factory=dict)  # user id -> [comment dicts as Canvas returns them]
    files: dict = field(default_factory=dict)  # file id -> (name, bytes)
    url: str = ""

    def submission(self, user: str) -> dict:
        return {"id": 9000 + int(user), "user_id": int(user), "assignment_id": int(self.assignment),
                "submission_comments": self.comments.get(user, [])}

    def of(self, method: str, pattern: str) -> list[Received]:
        """The requests received with ``method`` and a path matching ``pattern``."""
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]


def _form(handler: BaseHTTPRequestHandler, body: bytes) -> dict:
    kind = handler.headers.get("Content-Type", "")
    if kind.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {kind}\r\n\r\n".encode() + body)
        return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                for part in message.iter_parts()}
    return parse_qs(body.decode())


def _handler(canvas: CanvasStandIn):
    api = f"/api/v1/courses/{canvas.course}"
    submission = re.compile(rf"{api}/assignments/{canvas.assignment}/submissions/(\d+)")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status: int, payload) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = Received(method, url.path, parse_qs(url.query), _form(self, body) if body else {},
                               self.headers.get("Authorization"))
            canvas.requests.append(request)
            if url.path.startswith("/api/v1/") and request.authorization != f"Bearer {canvas.token}":
                return self._reply(401, {"errors": [{"message": "Invalid access token."}]})
            user = (found := submission.fullmatch(url.path.removesuffix("/comments/files"))) and found[1]
            if method == "GET" and url.path == api:
                return self._reply(200, {"id": int(canvas.course), "name": "ECE 662"})
            if method == "GET" and url.path == f"{api}/assignments/{canvas.assignment}":
                return self._reply(200, {"id": int(canvas.assignment), "course_id": int(canvas.course),
                                         "name": "Pruning"})
            if method == "GET" and url.path == f"{api}/assignments/{canvas.assignment}/submissions":
                return self._reply(200, [canvas.submission(u) for u in canvas.users])
            if method == "POST" and user in canvas.users and url.path.endswith("/comments/files"):
                number = len(canvas.files) + 1
                canvas.files[number] = (request.form["name"][0], b"")
                return self._reply(200, {"upload_url": f"{canvas.url}/upload/{number}",
                                         "upload_params": {"filename": request.form["name"][0], "ticket": str(number)}})
            if method == "POST" and (found := re.fullmatch(r"/upload/(\d+)", url.path)):
                number = int(found[1])
                name = canvas.files[number][0]
                canvas.files[number] = (name, request.form["file"])
                return self._reply(201, {"id": number, "display_name": name, "filename": name,
                                         "size": len(request.form["file"]), "url": f"{canvas.url}/files/{number}"})
            if method == "PUT" and user in canvas.users:
                ids = [int(i) for i in request.form.get("comment[file_ids][]", [])]
                attachments = [{"id": i, "display_name": canvas.files[i][0], "filename": canvas.files[i][0]}
                               for i in ids]
                comments = canvas.comments.setdefault(user, [])
                comments.append({"id": len(comments) + 1, "comment": "", "attachments": attachments})
                return self._reply(200, canvas.submission(user))
            return self._reply(404, {"errors": [{"message": "The specified resource does not exist."}]})

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_PUT(self):
            self._serve("PUT")

    return Handler


def serve(canvas: CanvasStandIn):
    """Start ``canvas`` on a free port (sets its ``url``); returns the server (``shutdown()`` to stop it)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(canvas))
    canvas.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
