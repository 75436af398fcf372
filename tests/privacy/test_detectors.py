"""Each built-in detector on values it must find and on near misses it must leave alone."""

from __future__ import annotations

import pytest
from handoffd.privacy import PiiScanner, PrivacyConfig


def found(text: str, config: PrivacyConfig | None = None) -> list[tuple[str, str]]:
    scanner = PiiScanner(config or PrivacyConfig())
    return [(f.entity_type, text[f.start : f.end]) for f in scanner.scan(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+x@mail.example.co.uk.", [("EMAIL", "jane.doe+x@mail.example.co.uk")]),
        ("write to jürgen@web.de today", [("EMAIL", "jürgen@web.de")]),
        ("card 4111 1111 1111 1111 ok", [("CREDIT_CARD", "4111 1111 1111 1111")]),
        ("card 4111-1111-1111-1111", [("CREDIT_CARD", "4111-1111-1111-1111")]),
        ("amex 378282246310005.", [("CREDIT_CARD", "378282246310005")]),
        ("ref 1234 4111 1111 1111 1111", [("CREDIT_CARD", "4111 1111 1111 1111")]),
        ("iban DE89 3704 0044 0532 0130 00 thanks", [("IBAN", "DE89 3704 0044 0532 0130 00")]),
        ("GB82WEST12345698765432", [("IBAN", "GB82WEST12345698765432")]),
        ("ssn 123-45-6789", [("US_SSN", "123-45-6789")]),
        ("my SSN is 123456789", [("US_SSN", "123456789")]),
        ("host 10.0.0.1.", [("IP_ADDRESS", "10.0.0.1")]),
        ("v6 fe80::1 up", [("IP_ADDRESS", "fe80::1")]),
        ("2001:db8:85a3::8a2e:370:7334", [("IP_ADDRESS", "2001:db8:85a3::8a2e:370:7334")]),
        ("nic 08:0a:73:09:cb:4a", [("MAC_ADDRESS", "08:0a:73:09:cb:4a")]),
        ("nic 08-0A-73-09-CB-4A", [("MAC_ADDRESS", "08-0A-73-09-CB-4A")]),
        ("cisco 0800.2b01.0203", [("MAC_ADDRESS", "0800.2b01.0203")]),
        ("call (415) 555-2671 now", [("PHONE", "(415) 555-2671")]),
        ("call +44 20 7946 0958", [("PHONE", "+44 20 7946 0958")]),
        ("ruf 030 12345678 an", [("PHONE", "030 12345678")]),
        ("appelez 04 15 39 15 00", [("PHONE", "04 15 39 15 00")]),
        ("tel 206.269.0743x9150", [("PHONE", "206.269.0743x9150")]),
    ],
)
def test_finds_entity(text: str, expected: list[tuple[str, str]]) -> None:
    """A valid value of each built-in type is found, exactly its own span and nothing else."""
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # 16 digits failing Luhn
        "card 0000 0000 0000 0000",  # passes Luhn but one repeated digit
        "id 123456789 is not labelled as an SSN",
        "ssn 123-45 6789",  # mixed separators
        "ip 256.1.1.1",
        "ip 192.168.01.1",  # leading zero
        "at 12:30:45 sharp",
        "use std::vector here",
        "mac 08:0a-73:09:cb:4a",  # mixed separators
        "mail at example dot com or @handle",
        "on 2024-01-15, version 1.2, 10 20 30 40 50 apples",
        "order 123456789012",
        "call (123) 456-7890",  # NANP area codes never start with 0 or 1
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "see https://example.com/articles/my-very-long-article-title-2024",
        "ThisIsAVeryLongCamelCaseIdentifierName and release-2024-candidate-build",
        "please send the password: it is required",
    ],
)
def test_near_miss_is_not_found(text: str) -> None:
    """Values failing their checksum/rules and look-alikes (hashes, times, dates) are ignored."""
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "entity_type"),
    [
        ("iban DE89 3704 0044 0532 0130 01", "IBAN"),  # checksum fails
        ("iban DE89 3704 0044 0532 0130", "IBAN"),  # too short for DE
        ("iban XX89 3704 0044 0532 0130 00", "IBAN"),  # no such country
        ("ssn 000-12-3456", "US_SSN"),
        ("ssn 666-12-3456", "US_SSN"),
        ("ssn 912-12-3456", "US_SSN"),
        ("ssn 123-00-4567", "US_SSN"),
        ("ssn 123-45-0000", "US_SSN"),
    ],
)
def test_near_miss_is_not_that_type(text: str, entity_type: str) -> None:
    """A near miss is not labelled with the type it imitates (its digits may still be caught by
    another detector, e.g. a failed IBAN's digits as a phone: that is the fail-safe side)."""
    assert entity_type not in [t for t, _ in found(text)]


def test_uk_number_needs_gb_region() -> None:
    """A national-format UK number is found with region GB and not with region US only."""
    text = "ring 020 7946 0958 please"
    assert found(text, PrivacyConfig(phone_regions=("US",))) == []
    assert found(text, PrivacyConfig(phone_regions=("GB",))) == [("PHONE", "020 7946 0958")]
    # international format needs no region
    assert found("ring +44 20 7946 0958", PrivacyConfig(phone_regions=("US",))) == [
        ("PHONE", "+44 20 7946 0958")
    ]


def test_us_number_needs_us_region() -> None:
    """A national-format US number is found with region US only when US is configured."""
    text = "call 415-555-2671"
    assert found(text, PrivacyConfig(phone_regions=("DE",))) == []
    assert found(text, PrivacyConfig(phone_regions=("US",))) == [("PHONE", "415-555-2671")]


def test_valid_mode_rejects_unassigned_ranges() -> None:
    """phone_validation=valid drops numbers of possible length that are in no real range."""
    text = "call (999) 555-1234"  # area code 999 is not assigned
    assert found(text) == [("PHONE", "(999) 555-1234")]
    assert found(text, PrivacyConfig(phone_validation="valid")) == []


def test_two_numbers_in_a_row_are_both_covered() -> None:
    """Two phones separated only by a space are both covered, every digit."""
    text = "020 7946 0958 020 7946 0959"
    spans = found(text, PrivacyConfig(phone_regions=("GB",)))
    # one merged finding; its label may be another type whose detector also fired on the digits
    assert [v for _, v in spans] == [text]


@pytest.mark.parametrize(
    ("text", "value", "rule"),
    [
        ("key sk-proj-abcdEFGH1234ijklMNOP5678qrst", "sk-proj-abcdEFGH1234ijklMNOP5678qrst",
         "privacy.secret.openai"),
        ("key sk-ant-api03-abcdEFGH1234ijklMNOP5678", "sk-ant-api03-abcdEFGH1234ijklMNOP5678",
         "privacy.secret.anthropic"),
        ("token ghp_" + "a1B2" * 9, "ghp_" + "a1B2" * 9, "privacy.secret.github"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijkl",
         "github_pat_11ABCDEFG0123456789_abcdefghijkl", "privacy.secret.github"),
        ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", "privacy.secret.aws"),
        ("slack xoxb-123456789012-abcdefABCDEF", "xoxb-123456789012-abcdefABCDEF",
         "privacy.secret.slack"),
        ("g AIzaSyD-abcdefghijklmnopqrstuvwxyz01234 x", "AIzaSyD-abcdefghijklmnopqrstuvwxyz01234",
         "privacy.secret.google"),
        ("Authorization: Bearer abc123def456ghi789jkl", "abc123def456ghi789jkl",
         "privacy.secret.bearer"),
        ("DB_PASSWORD=hunter2hunter2", "hunter2hunter2", "privacy.secret.assignment"),
        ('"client_secret": "s3cr3tV4lue!"', 's3cr3tV4lue!', "privacy.secret.assignment"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
         "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
         "privacy.secret.jwt"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY----- after",
         "-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY-----",
         "privacy.secret.private_key"),
        ("-----BEGIN PRIVATE KEY-----\nMIIabc cut", "-----BEGIN PRIVATE KEY-----\nMIIabc cut",
         "privacy.secret.private_key"),
        ("random 8fK2pQ9xL4mZ7vB1nW6cR3tY5 here", "8fK2pQ9xL4mZ7vB1nW6cR3tY5",
         "privacy.secret.entropy"),
    ],
)  # fmt: skip
def test_finds_secret(text: str, value: str, rule: str) -> None:
    """Well-known token formats and high-entropy strings are SECRETs with their own rule id."""
    findings = PiiScanner(PrivacyConfig()).scan(text)
    assert [(f.entity_type, text[f.start : f.end], f.rule_id) for f in findings] == [
        ("SECRET", value, rule)
    ]


def test_entropy_detection_can_be_turned_off() -> None:
    """secrets.high_entropy=false leaves unknown-format strings alone but keeps known formats."""
    config = PrivacyConfig.model_validate({"secrets": {"high_entropy": False}})
    assert found("random 8fK2pQ9xL4mZ7vB1nW6cR3tY5 here", config) == []
    assert found("aws AKIAIOSFODNN7EXAMPLE", config) == [("SECRET", "AKIAIOSFODNN7EXAMPLE")]


def test_custom_regex_and_keywords() -> None:
    """Custom regexes and case-insensitive whole-word keywords report their own type and rule."""
    config = PrivacyConfig.model_validate(
        {
            "custom": [
                {"name": "employee", "entity_type": "EMPLOYEE_ID", "regex": r"EMP-\d{6}"},
                {
                    "name": "codenames",
                    "entity_type": "PROJECT",
                    "keywords": ["Bluebird", "night jar"],
                },
            ]
        }
    )
    text = "EMP-123456 works on BLUEBIRD and Night Jar, not bluebirds."
    findings = PiiScanner(config).scan(text)
    assert [(f.entity_type, text[f.start : f.end], f.rule_id) for f in findings] == [
        ("EMPLOYEE_ID", "EMP-123456", "privacy.custom.employee"),
        ("PROJECT", "BLUEBIRD", "privacy.custom.codenames"),
        ("PROJECT", "Night Jar", "privacy.custom.codenames"),
    ]


def test_keywords_inside_words_when_asked() -> None:
    """whole_words=false also matches a keyword inside a longer word."""
    config = PrivacyConfig.model_validate(
        {"custom": [{"name": "k", "entity_type": "K", "keywords": ["bird"], "whole_words": False}]}
    )
    assert found("bluebirds", config) == [("K", "bird")]


def test_ignore_values_and_disabled() -> None:
    """ignore_values are never reported (case-insensitively); enabled=false finds nothing."""
    text = "mail support@example.com or jane@example.com"
    config = PrivacyConfig(ignore_values=("SUPPORT@example.com",))
    assert found(text, config) == [("EMAIL", "jane@example.com")]
    assert found(text, PrivacyConfig(enabled=False)) == []


def test_empty_and_plain_text() -> None:
    """Empty text and prose without any PII give no findings."""
    assert found("") == []
    assert found("The quarterly report covers revenue, churn and the roadmap. " * 30) == []


def test_twelve_digit_maestro_only() -> None:
    """12-digit numbers are cards only with a Maestro prefix and a valid Luhn digit."""
    assert found("maestro 6304 7104 8326 ok") == [("CREDIT_CARD", "6304 7104 8326")]
    assert found("order 4304 7104 8321 ok") == []  # Luhn-valid but not a Maestro prefix


def test_long_lists_are_found_item_by_item() -> None:
    """A long list of cards or phones separated by single spaces is not one unreadable run:
    every item is covered."""
    cards = " ".join(["4111 1111 1111 1111"] * 40)
    found_cards = found(f"cards {cards} end")
    assert [t for t, _ in found_cards] == ["CREDIT_CARD"] * 40
    phones = " ".join(["(415) 555-2671"] * 30)
    text = f"phones {phones} end"
    spans = PiiScanner(PrivacyConfig(phone_regions=("US",))).scan(text)
    covered = {i for f in spans for i in range(f.start, f.end)}
    assert all(i in covered for i, c in enumerate(text) if c.isdigit())


def test_isbn_and_uuid_are_not_cards_or_phones() -> None:
    """A Luhn-valid ISBN-13 is not a card; a UUID's all-digit first group is not a phone."""
    assert found("ISBN 978-1-5354-7186-2 is out of print.") == []
    assert found("The request id was 09876038-355a-4f30-b0b0-561dd38a1c17.") == []


@pytest.mark.parametrize(
    "text",
    [
        "password = self.password",
        "token = get_token(user)",
        "api_key=${API_KEY}",
        "secret: {{ vault_secret }}",
        "client_secret = settings.oauth.secret",
    ],
)
def test_assignments_of_code_are_not_secrets(text: str) -> None:
    """A key=value whose value is code or a reference (not a literal) is not a secret."""
    assert found(text) == []


def test_annotations_and_timestamps_are_not_secrets_or_cards() -> None:
    """A type annotation is no password; a date and time is no card even when Luhn-valid."""
    assert found("def login(password: SecretStr) -> None") == []
    assert found("at 20080830 172159 UTC") == []
    assert found('"password": "Sunflower"') == [("SECRET", "Sunflower")]


def test_email_in_quotes() -> None:
    """A quote before an address is not part of it; an apostrophe inside the local part is."""
    assert found("to='contact@mail.com'") == [("EMAIL", "contact@mail.com")]
    assert found("mail o'brien@example.ie") == [("EMAIL", "o'brien@example.ie")]
