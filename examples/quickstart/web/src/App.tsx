// The React client of docs/QUICKSTART.md: board 1's cards, live.
import { useMemo, useState } from "react";
import { BoardChannel } from "./rx/board.channels.js";
import { useChannel } from "./rx/rxgorm/react.js";

export function BoardView({ token }: { token: string }) {
  const board = useMemo(() => new BoardChannel({ url: `ws://${location.host}/rx`, token }, { boardId: "1" }), [token]);
  const { state, error } = useChannel(board);
  const [text, setText] = useState("");
  if (error) return <p>{error.message}</p>;
  if (!state) return <p>loading…</p>;
  return (
    <div>
      <h1>{state.title}</h1>
      <ul>
        {state.cards.map((card) => (
          <li key={card.id} onClick={() => void board.toggle(card.id)}>
            {card.done ? "✓ " : ""}
            {card.text}
          </li>
        ))}
      </ul>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void board.addCard(text).then(() => setText(""));
        }}
      >
        <input value={text} onChange={(e) => setText(e.target.value)} placeholder="a new card" />
      </form>
    </div>
  );
}
