// Placeholder: helper feat/dash-views replaces this file with the Charts screen.
import { Placeholder } from "../components/Placeholder";

export default function ChartsPage() {
  return <Placeholder title="Charts" />;
}
