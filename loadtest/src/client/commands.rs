//! What a line typed at the prompt means: a slash command or a message.

/// One typed line, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Plain text: send it to the current room.
    Say(String),
    Help,
    Rooms,
    /// The room directory: public rooms whose name starts with this.
    PublicRooms(String),
    /// The stored mentions, newest first (then marked read).
    Notifications,
    Join(String),
    Dm(String),
    Invite(String),
    /// Upload the file at this path and post it to the current room.
    Upload(String),
    History(u32),
    Who,
    /// End this session on the server (`all`: every session), then exit.
    Logout {
        all: bool,
    },
    Quit,
    /// A slash command this client does not know, or a bad argument.
    Unknown(String),
    /// An empty line.
    Nothing,
}

pub const HELP: &str = "\
commands:
  <text>            send to the current room
  /join <name|id>   join (or create) a public room and switch to it
  /dm <username>    open the direct-message room with a user and switch to it
  /invite <user>    add a user to the current room
  /upload <path>    upload a file and post it to the current room
  /rooms            list your rooms with unread counts and mentions
  /rooms public [prefix]  list public rooms (the directory) by name prefix
  /notifications    list your latest mentions and mark them read
  /history [n]      show the last n messages of the current room (default 20)
  /who              list the current room's members
  /logout [all]     end this session (all: every session) on the server and exit
  /quit             close the connection and exit (also Ctrl-D)
  //text            send text that starts with a slash";

pub fn parse(line: &str) -> Command {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Command::Nothing;
    }
    if let Some(text) = line.strip_prefix("//") {
        return Command::Say(format!("/{text}"));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Command::Say(line.to_string());
    };
    let (name, arg) = command
        .split_once(char::is_whitespace)
        .map_or((command, ""), |(n, a)| (n, a.trim()));
    if name == "upload" {
        // A path is taken as typed (no `@` stripping; spaces allowed).
        return if arg.is_empty() {
            Command::Unknown("/upload takes the path of a file".into())
        } else {
            Command::Upload(arg.to_string())
        };
    }
    if name == "rooms"
        && let Some(rest) = arg.strip_prefix("public")
        && (rest.is_empty() || rest.starts_with(char::is_whitespace))
    {
        return Command::PublicRooms(rest.trim().to_string());
    }
    let arg = arg.trim_start_matches('@').to_string();
    match (name, arg.is_empty()) {
        ("notifications" | "n", _) => Command::Notifications,
        ("help" | "h" | "?", _) => Command::Help,
        ("rooms", _) => Command::Rooms,
        ("who", _) => Command::Who,
        ("quit" | "q" | "exit", _) => Command::Quit,
        ("logout", true) => Command::Logout { all: false },
        ("logout", false) if arg == "all" => Command::Logout { all: true },
        ("join", false) => Command::Join(arg),
        ("dm", false) => Command::Dm(arg),
        ("invite", false) => Command::Invite(arg),
        ("history", true) => Command::History(20),
        ("history", false) => match arg.parse::<u32>() {
            Ok(n @ 1..=100) => Command::History(n),
            _ => Command::Unknown(format!(
                "/history takes a number from 1 to 100, not {arg:?}"
            )),
        },
        _ => Command::Unknown(format!(
            "unknown command or missing argument: {line} (try /help)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse("hello @bob"), Command::Say("hello @bob".into()));
        assert_eq!(parse("//me waves"), Command::Say("/me waves".into()));
        assert_eq!(parse("   "), Command::Nothing);
        assert_eq!(parse("/dm @bob"), Command::Dm("bob".into()));
        assert_eq!(parse("/join general"), Command::Join("general".into()));
        assert_eq!(
            parse("/upload ./my photos/@cat.png"),
            Command::Upload("./my photos/@cat.png".into())
        );
        assert!(matches!(parse("/upload"), Command::Unknown(_)));
        assert_eq!(parse("/history"), Command::History(20));
        assert_eq!(parse("/history 5"), Command::History(5));
        assert!(matches!(parse("/history 500"), Command::Unknown(_)));
        assert!(matches!(parse("/dm"), Command::Unknown(_)));
        assert_eq!(parse("/quit"), Command::Quit);
        assert_eq!(parse("/rooms"), Command::Rooms);
        assert_eq!(parse("/rooms public"), Command::PublicRooms(String::new()));
        assert_eq!(
            parse("/rooms public Rust fans"),
            Command::PublicRooms("Rust fans".into())
        );
        assert_eq!(parse("/notifications"), Command::Notifications);
        assert_eq!(parse("/logout"), Command::Logout { all: false });
        assert_eq!(parse("/logout all"), Command::Logout { all: true });
        assert!(matches!(parse("/logout everything"), Command::Unknown(_)));
    }
}
