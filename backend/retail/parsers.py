"""The API's JSON parser: DRF's, answering 400 to JSON nested too deep to parse."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DrfJsonParser


class JSONParser(DrfJsonParser):
    """Parse a JSON body; a body nested deeper than the interpreter recurses is malformed.

    The standard library's decoder recurses once per nesting level, so `[` * 1000 raises
    RecursionError, which DRF lets through as a 500. No request of this API nests deeper
    than a few levels: the client gets the same 400 as for any other malformed body.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
