"""``cnnzoo serve``: the web app (draw a digit, watch LeNet-5 see it; explore any architecture)."""

NAME = "serve"
HELP = "serve the web app: draw and predict, feature maps, architecture explorer"
DESCRIPTION = (
    "Serve the web app. Without --checkpoint it uses the newest finished run (any model) under --runs-dir, else an untrained "
    "LeNet (with a warning on the page). Binds to 127.0.0.1 unless --host says otherwise, and answers only "
    "requests addressed to the names it is bound to (--allow-host adds one)."
)
KEEP_ALIVE_SECONDS = 5  # an idle connection between requests is closed after this


def add_arguments(p) -> None:
    from ..options import Rule

    p.add_argument("--checkpoint", metavar="CKPT_OR_RUN_DIR", help="a run directory or its model.safetensors")
    p.add_argument("--model", metavar="NAME", help="serve this model with pretrained --weights instead")
    p.add_argument(
        "--weights",
        help="with --model: pretrained weights (imagenet, imagenet:v2 or a .pth/.safetensors file)",
    )
    p.add_argument(
        "--runs-dir",
        default="runs",
        help="where to look for the newest run, where the Train page's runs go and the runs it replays (default: runs)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    p.add_argument(
        "--port", type=Rule(int, 0, 65_535).argtype("--port"), default=8000, help="port (default: 8000)"
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests whose Host header is NAME (a name clients use for this machine; '*' for "
        "any). By default only 127.0.0.1, localhost, [::1] and --host are answered, which stops a web page "
        "from reading the API through DNS rebinding",
    )
    p.add_argument(
        "--threads",
        type=Rule(int, 1, 1024).argtype("--threads"),
        default=1,
        help="torch threads per request (default: 1; requests already run in parallel, and small nets gain "
        "nothing from more, while a busy machine makes them wait on each other)",
    )


def bind(host: str, port: int):
    """A listening socket on (host, port), or a one-line error: a port in use, a host that is not this
    machine's. Bound before anything says "open http://...", so the URL printed is one that answers."""
    import socket

    from ..errors import CnnzooError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise CnnzooError(f"--host {host[:80]!r}: not an address this machine can bind ({e})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart right after a stop works
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise CnnzooError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def run(args) -> int:
    import torch
    import uvicorn

    from ..web import create_app, load_session
    from ..web.guards import header_deadline_protocol, host_names

    torch.set_num_threads(max(1, args.threads))
    session = load_session(args.checkpoint, args.runs_dir, args.model, args.weights)
    session.warm_up()  # load the gallery and trace the feature extractor now, not on the first visitor's click
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]  # --port 0: the one the system chose
    print(f"model: {session.card.model} from {session.source}")
    if session.warning:
        print(f"warning: {session.warning}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {args.host}: other machines on the network can reach this server "
            "(add --allow-host NAME for each name they use for it)"
        )
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"open http://{f'[{shown}]' if ':' in shown else shown}:{port}/", flush=True)
    app = create_app(session, allowed_hosts=host_names(args.host, args.allow_host))
    app.state.runs_dir = args.runs_dir  # the Train page starts its runs there and replays the ones it finds
    config = uvicorn.Config(
        app, log_level="warning", timeout_keep_alive=KEEP_ALIVE_SECONDS, http=header_deadline_protocol()
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0
