"""``cnnzoo serve``: the web app (draw a digit, watch LeNet-5 see it; explore any architecture)."""

NAME = "serve"
HELP = "serve the web app: draw and predict, feature maps, architecture explorer"
DESCRIPTION = (
    "Serve the web app. Without --checkpoint it uses the newest LeNet run under --runs-dir, else an untrained "
    "LeNet (with a warning on the page). Binds to 127.0.0.1 unless --host says otherwise."
)


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", metavar="CKPT_OR_RUN_DIR", help="a run directory or its model.safetensors")
    p.add_argument("--runs-dir", default="runs", help="where to look for the newest run (default: runs)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per request (default: 1; requests already run in parallel, and small nets gain "
        "nothing from more, while a busy machine makes them wait on each other)",
    )


def run(args) -> int:
    import torch
    import uvicorn

    from ..web import create_app, load_session

    torch.set_num_threads(max(1, args.threads))
    session = load_session(args.checkpoint, args.runs_dir)
    session.warm_up()  # load the gallery and trace the feature extractor now, not on the first visitor's click
    print(f"model: {session.card.model} from {session.source}")
    if session.warning:
        print(f"warning: {session.warning}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: other machines on the network can reach this server")
    print(f"open http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}/")
    app = create_app(session)
    app.state.runs_dir = args.runs_dir  # the Train page starts its runs there and replays the ones it finds
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
