"""Why a letter cannot be rendered. Part of the project's error tree (`schemas.errors`):

    InbeeldError
    └── LetterError                   a letter cannot be rendered            (letter_error)
        ├── BundleInvalid             manifest/files do not form a bundle    (bundle_invalid)
        ├── TemplateInvalid           the template text is refused           (template_invalid)
        │   ├── TemplateSyntaxError   breaks the grammar (line, column)      (template_syntax)
        │   ├── UndeclaredPlaceholder uses a placeholder the bundle does not declare
        │   │                                                               (undeclared_placeholder)
        │   └── TemplateTooLarge      exceeds a size or complexity bound     (template_too_large)
        ├── ValuesInvalid             the values do not fit the declaration (values_invalid)
        │   ├── MissingValue          a required/used placeholder has no value (missing_value)
        │   ├── UnknownValue          a value for an undeclared placeholder  (unknown_value)
        │   └── InvalidValue          a value breaks its placeholder's type  (invalid_value)
        ├── LanguageUnavailable       the bundle has no text in that language (language_unavailable)
        ├── UnprintableCharacter      a character no letter font covers     (unprintable_character)
        └── RenderLimitExceeded       output size, page count or render time (render_limit)

Messages name the placeholder (in `field`), the language and the position, never a value:
values are personal data, and messages travel to logs.
"""

from __future__ import annotations

from schemas.errors import InbeeldError


class LetterError(InbeeldError):
    reason = "letter_error"


class BundleInvalid(LetterError):
    reason = "bundle_invalid"


class TemplateInvalid(LetterError):
    """`part` ("subject" or "body"), `line` and `column` (1-based, within that part) say
    where, when known."""

    reason = "template_invalid"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        part: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.part = part
        self.line = line
        self.column = column


class TemplateSyntaxError(TemplateInvalid):
    reason = "template_syntax"


class UndeclaredPlaceholder(TemplateInvalid):
    reason = "undeclared_placeholder"


class TemplateTooLarge(TemplateInvalid):
    reason = "template_too_large"


class ValuesInvalid(LetterError):
    reason = "values_invalid"


class MissingValue(ValuesInvalid):
    reason = "missing_value"


class UnknownValue(ValuesInvalid):
    reason = "unknown_value"


class InvalidValue(ValuesInvalid):
    reason = "invalid_value"


class LanguageUnavailable(LetterError):
    reason = "language_unavailable"


class UnprintableCharacter(LetterError):
    reason = "unprintable_character"


class RenderLimitExceeded(LetterError):
    reason = "render_limit"
