"""Serve the fake payment gateway of SPEC §3.4 (fault injection through /_control)."""

import signal

from django.core.management.base import BaseCommand

from payments.fake_gateway import fake_gateway_server


class Command(BaseCommand):
    help = (
        "Serve a fake payment gateway on 127.0.0.1:P (modes up, down, slow, trickle; a failure "
        "rate), logging each call to $RETAIL_LOG_DIR/gateway.log."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, required=True, metavar="P", help="0: any free port")
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args, port: int, host: str, **options):
        server = fake_gateway_server(host=host, port=port)
        # SIGTERM (a test's terminate(), a service manager) stops it as cleanly as Ctrl-C.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        bound_host, bound_port = server.server_address[:2]
        self.stdout.write(f"fake gateway listening on http://{bound_host}:{bound_port}")
        self.stdout.flush()
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
